"""Reads a results folder as `tensorboard --logdir` does (TensorBoard's EventMultiplexer) and prints
every run's scalars and hparams as JSON: {"runs": {run: {"scalars": {tag: [[step, value], ...]},
"hparams": {key: value}}}}. harness/tests/tensorboard.rs compares them with the run folders.

Usage: python scripts/read_tensorboard.py RESULTS_DIR
"""
import json
import sys

from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
from tensorboard.plugins.hparams import plugin_data_pb2


def main():
    mux = pem.EventMultiplexer(size_guidance={"scalars": 0, "tensors": 0})
    mux.AddRunsFromDirectory(sys.argv[1])
    mux.Reload()
    runs = {}
    for run, tags in mux.Runs().items():
        acc = mux.GetAccumulator(run)
        scalars = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags.get("scalars", [])}
        # TensorBoard >= 2 reads simple_value scalars as tensors when data_compat applies.
        for t in tags.get("tensors", []):
            events = acc.Tensors(t)
            if not t.startswith("_hparams_") and events and events[0].tensor_proto.float_val:
                scalars[t] = [[e.step, float(e.tensor_proto.float_val[0])] for e in events]
        hparams = {}
        content = mux.PluginRunToTagToContent("hparams").get(run, {})
        for tag, raw in content.items():
            data = plugin_data_pb2.HParamsPluginData.FromString(raw)
            if data.HasField("session_start_info"):
                for k, v in data.session_start_info.hparams.items():
                    kind = v.WhichOneof("kind")
                    hparams[k] = getattr(v, kind)
        runs[run] = {"scalars": scalars, "hparams": hparams}
    print(json.dumps({"runs": runs}))


if __name__ == "__main__":
    main()
