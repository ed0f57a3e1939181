//! One module per group of subcommands, each over the library's functions.

pub mod run;
