//! Integration tests: each drives the real `pcopy` binary on real temp dirs.

mod basis_diff;
mod chunks;
mod cli;
mod config;
mod copy_tree;
mod decision;
mod difftest;
mod durability;
#[cfg(feature = "failpoints")]
mod faults;
mod fidelity;
mod filter_diff;
mod hardening;
mod itemize_diff;
mod mirror_safety;
#[cfg(feature = "mpi")]
mod mpi;
mod operator;
mod power_cut;
mod progress;
mod reflink;
mod resume;
mod rsync_habits;
mod snapshots;
mod sync;
mod unclean;
mod util;
