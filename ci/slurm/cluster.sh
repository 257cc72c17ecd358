#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for the scale-out test: `cluster.sh start DIR` installs
# Debian's slurm-wlm and munge when missing, writes DIR/slurm.conf, starts munged, slurmctld and
# slurmd, waits for the node to be idle, and prints `export SLURM_CONF=...`; `cluster.sh stop DIR`
# stops all three and leaves nothing running. CPU only; needs root (as CI runs).
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")
stop() {
  # By pid file, then by the paths on their command lines (a daemon may rewrite its pid file).
  local sig
  for sig in TERM KILL; do
    for p in slurmd slurmctld munged; do
      if [ -f "$dir/$p.pid" ]; then kill -s "$sig" "$(cat "$dir/$p.pid")" 2>/dev/null || true; fi
    done
    pkill -"$sig" -f "$dir/slurm.conf" 2>/dev/null || true
    pkill -"$sig" -f "$dir/munge/munge.socket" 2>/dev/null || true
    sleep 1
  done
  # Wait until they are gone, so a caller that checks finds nothing left running.
  for _ in $(seq 1 40); do
    pgrep -f "$dir/(slurm.conf|munge/munge.socket)" >/dev/null || break
    sleep 0.25
  done
  rm -f "$dir"/*.pid
}
if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "cluster.sh: needs root to start munged and slurmd" >&2; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
mkdir -p "$dir"/{state,spool,munge}
host=$(hostname -s)
cpus=$(nproc)
# The munge key: the package's, or one made here.
key=/etc/munge/munge.key
if [ ! -s "$key" ]; then
  key="$dir/munge/munge.key"
  dd if=/dev/urandom bs=1 count=1024 of="$key" status=none
  chmod 600 "$key"
fi
munged --force --key-file "$key" --socket "$dir/munge/munge.socket" --pid-file "$dir/munged.pid" \
  --log-file "$dir/munged.log" --seed-file "$dir/munge/seed"
cat > "$dir/slurm.conf" <<CONF
ClusterName=harness-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N "$host"
for _ in $(seq 1 60); do
  if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "cluster.sh: the node did not become idle in 60 s; logs in $dir" >&2
sinfo >&2 || true
tail -20 "$dir"/slurmctld.log "$dir"/slurmd.log >&2 || true
stop
exit 1
