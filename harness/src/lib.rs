//! The harness library: suites, data, the trainer, experiments, the artifact store and the
//! report writer. The `harness` binary is a thin command line over it.
pub mod artifacts;
pub mod bench;
pub mod cards;
pub mod check;
pub mod coverage;
pub mod data;
pub mod device;
pub mod estimate;
pub mod experiments;
pub mod inference;
pub mod kernels;
pub mod lock;
pub mod optim;
pub mod plan;
pub mod report;
pub mod runner;
pub mod slurm;
pub mod stats;
pub mod suite;
pub mod tensorboard;
pub mod throughput;
pub mod train;
