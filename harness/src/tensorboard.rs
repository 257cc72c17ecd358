//! TensorBoard event files, written as training goes, so `tensorboard --logdir results/` shows
//! every run's curves live (Slurm tasks included: each writes into its own run folder).
//!
//! The format is TensorFlow's record file of `Event` protocol buffers (tensorflow/core/util/
//! event.proto, summary.proto; TensorBoard's hparams plugin_data.proto), encoded here by hand:
//! a record is `u64 length | u32 masked CRC-32C of the length | data | u32 masked CRC-32C of the
//! data`, little-endian. Scalars are `simple_value`s; the run's config goes in as the hparams
//! plugin's session start, so TensorBoard's HPARAMS tab lists the runs by their settings.
use std::io::Write;
use std::path::{Path, PathBuf};

/// The CRC TFRecord files carry: CRC-32C, rotated and offset ("masked").
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Protocol-buffer encoding of the few fields the events need.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn double(&mut self, field: u32, v: f64) -> &mut Self {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// A value of the run's hparams: TensorBoard takes numbers, strings and booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// An open event file in a run folder.
pub struct EventWriter {
    file: std::io::BufWriter<std::fs::File>,
    pub path: PathBuf,
}

impl EventWriter {
    /// A new event file in `dir` (`events.out.tfevents.<time>.<host>.<pid>`, TensorFlow's name).
    /// `resumed_at`: the step a resumed run continues after; TensorBoard then drops what an
    /// earlier file logged past it (the file's `SessionLog` START is a restart there), so
    /// replayed steps do not show twice.
    pub fn create(dir: &Path, resumed_at: Option<u64>) -> std::io::Result<Self> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
        let name = format!("events.out.tfevents.{}.{}.{}", now.as_secs(), host.trim(), std::process::id());
        let path = dir.join(name);
        let mut w = Self { file: std::io::BufWriter::new(std::fs::File::create(&path)?), path };
        let version = Pb::default().double(1, wall_time()).bytes(3, b"brain.Event:2").done();
        w.record(&version)?;
        // Every file opens a session (SessionLog START, Event field 7): TensorBoard reads the
        // first START of a run as its start and each later one as a restart, dropping what was
        // logged at or after its step. A resumed run's START is at the first step it logs again.
        let start = Pb::default().int(1, 1).done(); // SessionLog { status: START }
        let at = resumed_at.map_or(0, |step| step as i64 + 1);
        let event = Pb::default().double(1, wall_time()).int(2, at).bytes(7, &start).done();
        w.record(&event)?;
        w.file.flush()?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.file.write_all(&len)?;
        self.file.write_all(&masked_crc(&len).to_le_bytes())?;
        self.file.write_all(data)?;
        self.file.write_all(&masked_crc(data).to_le_bytes())
    }

    fn summary(&mut self, step: u64, values: &[Vec<u8>]) -> std::io::Result<()> {
        let mut summary = Pb::default();
        for v in values {
            summary.bytes(1, v);
        }
        let event = Pb::default().double(1, wall_time()).int(2, step as i64).bytes(5, &summary.done()).done();
        self.record(&event)
    }

    /// Scalars at one step (`train/loss`, ...); written through, so a live TensorBoard sees them.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> std::io::Result<()> {
        let encoded: Vec<Vec<u8>> = values.iter().filter(|(_, v)| v.is_finite()).map(|(tag, v)| Pb::default().bytes(1, tag.as_bytes()).float(2, *v as f32).done()).collect();
        if encoded.is_empty() {
            return Ok(());
        }
        self.summary(step, &encoded)?;
        self.file.flush()
    }

    /// The run's settings as the hparams plugin's session start (`_hparams_/session_start_info`).
    pub fn hparams(&mut self, hparams: &[(String, HParam)], group: &str) -> std::io::Result<()> {
        let mut start = Pb::default();
        for (k, v) in hparams {
            let value = match v {
                HParam::Number(x) => Pb::default().double(2, *x).done(),
                HParam::Text(s) => Pb::default().bytes(3, s.as_bytes()).done(),
                HParam::Bool(b) => Pb::default().int(4, *b as i64).done(),
            };
            let entry = Pb::default().bytes(1, k.as_bytes()).bytes(2, &value).done();
            start.bytes(1, &entry);
        }
        start.bytes(4, group.as_bytes()).double(5, wall_time());
        let plugin_data = Pb::default().int(1, 0).bytes(3, &start.done()).done(); // HParamsPluginData { version 0, session_start_info }
        let plugin = Pb::default().bytes(1, b"hparams").bytes(2, &plugin_data).done(); // PluginData
        let metadata = Pb::default().bytes(1, &plugin).done(); // SummaryMetadata { plugin_data }
        let value = Pb::default().bytes(1, b"_hparams_/session_start_info").bytes(9, &metadata).done();
        self.summary(0, &[value])?;
        self.file.flush()
    }
}

/// Where a run's training stands, from its event files (what `harness status` shows of a
/// running run): the latest logged step and losses, and the pace since the file began.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub step: u64,
    pub loss: Option<f64>,
    pub eval_loss: Option<f64>,
    /// Steps per second over the newest event file (a resumed run: since it resumed).
    pub steps_per_s: Option<f64>,
}

/// Reads one protobuf field at `at`: (field, wire type, varint value or the bytes).
fn field<'a>(b: &'a [u8], at: &mut usize) -> Option<(u32, u8, u64, &'a [u8])> {
    let varint = |b: &[u8], at: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    };
    let key = varint(b, at)?;
    let (f, wire) = ((key >> 3) as u32, (key & 7) as u8);
    match wire {
        0 => Some((f, wire, varint(b, at)?, &[])),
        1 | 5 => {
            let n = if wire == 1 { 8 } else { 4 };
            let bytes = b.get(*at..*at + n)?;
            *at += n;
            Some((f, wire, 0, bytes))
        }
        2 => {
            let n = varint(b, at)? as usize;
            let bytes = b.get(*at..*at + n)?;
            *at += n;
            Some((f, wire, 0, bytes))
        }
        _ => None,
    }
}

/// The newest event file of a run folder, read for [`Progress`]; a record cut short by a
/// write in progress ends the reading.
pub fn progress(dir: &Path) -> Option<Progress> {
    let newest = std::fs::read_dir(dir).ok()?.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents.")).max_by_key(|e| e.file_name())?;
    let bytes = std::fs::read(newest.path()).ok()?;
    let (mut at, mut p) = (0usize, Progress { step: 0, loss: None, eval_loss: None, steps_per_s: None });
    let mut first: Option<(f64, u64)> = None;
    let mut last_wall = 0.0;
    while at + 12 <= bytes.len() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().ok()?) as usize;
        let Some(data) = bytes.get(at + 12..at + 12 + len) else { break };
        at += 16 + len;
        let (mut i, mut wall, mut step, mut values) = (0usize, 0.0, 0u64, Vec::new());
        while i < data.len() {
            let Some((f, _, v, b)) = field(data, &mut i) else { break };
            match f {
                1 if b.len() == 8 => wall = f64::from_le_bytes(b.try_into().ok()?),
                2 => step = v,
                5 => {
                    let mut j = 0;
                    while let Some((1, _, _, value)) = field(b, &mut j) {
                        let (mut k, mut tag, mut x) = (0usize, &[][..], None);
                        while let Some((g, _, _, vb)) = field(value, &mut k) {
                            match g {
                                1 => tag = vb,
                                2 if vb.len() == 4 => x = Some(f32::from_le_bytes(vb.try_into().ok()?) as f64),
                                _ => {}
                            }
                        }
                        if let Some(x) = x {
                            values.push((String::from_utf8_lossy(tag).to_string(), x));
                        }
                    }
                }
                _ => {}
            }
        }
        for (tag, x) in values {
            match tag.as_str() {
                "train/loss" => {
                    p.loss = Some(x);
                    p.step = p.step.max(step);
                    first.get_or_insert((wall, step));
                    last_wall = wall;
                }
                "eval/loss" => p.eval_loss = Some(x),
                _ => {}
            }
        }
    }
    if let Some((w0, s0)) = first {
        if last_wall > w0 && p.step > s0 {
            p.steps_per_s = Some((p.step - s0) as f64 / (last_wall - w0));
        }
    }
    Some(p)
}

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A training run's event file as its trainer uses it: opened at the start (a fresh start also
/// writes the run's `config.json` as hparams), then scalars as they come. Writing is a view of
/// the run, never a reason to fail it: an error is reported once and the file dropped.
#[derive(Default)]
pub struct RunEvents(Option<EventWriter>);

impl RunEvents {
    /// Opens an event file in `dir`; `resumed_at`: the step a resumed run continues after.
    pub fn open(dir: &Path, resumed_at: Option<u64>) -> Self {
        match EventWriter::create(dir, resumed_at) {
            Ok(mut w) => {
                let config = std::fs::read_to_string(dir.join("config.json")).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
                if let (None, Some(c)) = (resumed_at, config) {
                    let group = c.get("kind").and_then(|k| k.as_str()).unwrap_or("run").to_string();
                    let _ = w.hparams(&flatten(&c), &group);
                }
                Self(Some(w))
            }
            Err(e) => {
                eprintln!("  TensorBoard events not written ({}): {e}", dir.display());
                Self(None)
            }
        }
    }

    pub fn log(&mut self, step: u64, values: &[(&str, f64)]) {
        if let Some(w) = self.0.as_mut() {
            if let Err(e) = w.scalars(step, values) {
                eprintln!("  TensorBoard events stopped ({}): {e}", w.path.display());
                self.0 = None;
            }
        }
    }
}

/// A run config as hparams: its scalar settings by dotted key (`train.lr`, `model.d_model`);
/// lists and nulls are left out.
pub fn flatten(config: &serde_json::Value) -> Vec<(String, HParam)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, HParam)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
                }
            }
            serde_json::Value::Number(n) => out.extend(n.as_f64().map(|x| (prefix.to_string(), HParam::Number(x)))),
            serde_json::Value::String(s) => out.push((prefix.to_string(), HParam::Text(s.clone()))),
            serde_json::Value::Bool(b) => out.push((prefix.to_string(), HParam::Bool(*b))),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", config, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C of "123456789" is 0xE3069283 (RFC 3720); a record of TensorFlow's writer for the
    /// version event starts with its length and the masked CRC of it.
    #[test]
    fn crc_and_varints_follow_the_formats() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let mut p = Pb::default();
        p.varint(300);
        assert_eq!(p.done(), vec![0xac, 0x02]);
        assert_eq!(Pb::default().int(2, 5).done(), vec![0x10, 0x05]);
        assert_eq!(Pb::default().float(2, 1.0).done(), vec![0x15, 0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn records_frame_their_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), None).unwrap();
        w.scalars(3, &[("train/loss", 2.5), ("skipped", f64::NAN)]).unwrap();
        let bytes = std::fs::read(&w.path).unwrap();
        let mut at = 0;
        let mut records = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()), masked_crc(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            assert_eq!(u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap()), masked_crc(data));
            at += 16 + len;
            records += 1;
        }
        assert_eq!(records, 3, "the version event, the session start and one summary (the NaN left out)");
    }

    #[test]
    fn progress_reads_back_the_latest_losses() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), None).unwrap();
        w.hparams(&[("train.lr".into(), HParam::Number(0.1))], "clm").unwrap();
        w.scalars(0, &[("eval/loss", 6.0)]).unwrap();
        w.scalars(1, &[("train/loss", 5.5), ("train/lr", 0.1)]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.scalars(9, &[("train/loss", 4.25)]).unwrap();
        w.scalars(10, &[("eval/loss", 4.5)]).unwrap();
        // A record being written (cut short) is ignored.
        let mut bytes = std::fs::read(&w.path).unwrap();
        bytes.extend_from_slice(&[40, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        std::fs::write(&w.path, bytes).unwrap();
        let p = progress(dir.path()).unwrap();
        assert_eq!((p.step, p.loss, p.eval_loss), (9, Some(4.25), Some(4.5)));
        assert!(p.steps_per_s.is_some_and(|r| r > 0.0 && r < 8.0 / 0.019), "{p:?}");
    }

    #[test]
    fn configs_flatten_to_dotted_scalars() {
        let h = flatten(&serde_json::json!({"train": {"lr": 0.001, "steps": 10}, "kind": "clm", "seeds": [1, 2], "x": null, "b": true}));
        assert!(h.contains(&("train.lr".into(), HParam::Number(0.001))) && h.contains(&("kind".into(), HParam::Text("clm".into()))));
        assert!(h.contains(&("b".into(), HParam::Bool(true))) && !h.iter().any(|(k, _)| k == "seeds" || k == "x"));
    }
}
