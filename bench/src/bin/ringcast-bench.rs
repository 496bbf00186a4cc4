//! `ringcast-bench`: measure a Pusher-protocol server. See the crate docs and bench/README.md.

use clap::Parser;
use ringcast_bench::cli::{Cli, Scenario};
use ringcast_bench::scenario::{self, ceiling, connect, fanout, idle, slow, soak, trigger};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (report, common) = match &cli.scenario {
        Scenario::CeilingSender(args) => {
            ceiling::sender(args)?;
            return Ok(());
        }
        Scenario::Idle(a) => (idle::run(a)?, &a.common),
        Scenario::Connect(a) => (connect::run(a)?, &a.common),
        Scenario::Fanout(a) => (fanout::run(a)?, &a.common),
        Scenario::Trigger(a) => (trigger::run(a)?, &a.common),
        Scenario::Ceiling(a) => (ceiling::run(a)?, &a.common),
        Scenario::Slow(a) => (slow::run(a)?, &a.common),
        Scenario::Soak(a) => (soak::run(a)?, &a.common),
    };
    scenario::emit(&report, common)?;
    // Worker threads still own client sockets and runtimes; the process exit closes them all
    // at once instead of tearing down each task.
    std::process::exit(if report.passed() { 0 } else { 2 });
}
