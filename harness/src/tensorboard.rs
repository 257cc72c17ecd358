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
    /// earlier file logged past it (a `SessionLog` START), so replayed steps do not show twice.
    pub fn create(dir: &Path, resumed_at: Option<u64>) -> std::io::Result<Self> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
        let name = format!("events.out.tfevents.{}.{}.{}", now.as_secs(), host.trim(), std::process::id());
        let path = dir.join(name);
        let mut w = Self { file: std::io::BufWriter::new(std::fs::File::create(&path)?), path };
        let version = Pb::default().double(1, wall_time()).bytes(3, b"brain.Event:2").done();
        w.record(&version)?;
        if let Some(step) = resumed_at {
            let start = Pb::default().int(1, 1).done(); // SessionLog { status: START }
            let event = Pb::default().double(1, wall_time()).int(2, step as i64 + 1).bytes(6, &start).done();
            w.record(&event)?;
        }
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

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
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
        assert_eq!(records, 2, "the version event and one summary (the NaN left out)");
    }

    #[test]
    fn configs_flatten_to_dotted_scalars() {
        let h = flatten(&serde_json::json!({"train": {"lr": 0.001, "steps": 10}, "kind": "clm", "seeds": [1, 2], "x": null, "b": true}));
        assert!(h.contains(&("train.lr".into(), HParam::Number(0.001))) && h.contains(&("kind".into(), HParam::Text("clm".into()))));
        assert!(h.contains(&("b".into(), HParam::Bool(true))) && !h.iter().any(|(k, _)| k == "seeds" || k == "x"));
    }
}
