//! Integration tests: real `cairn` processes on loopback.

mod common;

mod blob_ops;
mod cli;
mod deletes;
mod failover;
mod fastdfs;
mod faults;
mod fuse;
mod heal;
mod hostile;
mod meta;
mod mistakes;
mod paths;
