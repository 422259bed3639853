//! `azsync sync SRC DEST`.

use std::process::{Command, ExitCode};
use std::sync::Arc;

use anyhow::Context;
use sync_core::SyncBuilder;

use crate::cli::SyncArgs;
use crate::output::{Output, Style};
use crate::EXIT_PARTIAL;

pub fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    // The local destination is served by our own agent in a child process, so a local sync runs
    // exactly the protocol an SSH sync carries.
    let exe =
        std::env::current_exe().context("cannot find the azsync executable to start the agent")?;
    let mut agent = Command::new(exe);
    agent.args(["agent", "--stdio"]);

    let style = Style::choose(args.json, args.no_progress);
    let output = Arc::new(Output::new(style, args.itemize_changes || args.dry_run));
    let builder = SyncBuilder::new(&args.src, &args.dest)
        .delete(args.delete)
        .delete_excluded(args.delete_excluded)
        .checksum(args.checksum)
        .dry_run(args.dry_run)
        .itemize(args.itemize_changes)
        .allow_secrets(args.allow_secrets)
        .safe_links(args.safe_links)
        .agent(agent)
        .progress(output.clone());
    let builder = args
        .exclude
        .iter()
        .fold(builder, |b, p| b.exclude(p.clone()));
    let builder = args
        .exclude_from
        .iter()
        .fold(builder, |b, f| b.exclude_from(f.clone()));

    let started = std::time::Instant::now();
    let result = builder.run();
    output.finish_progress();
    let report = result?;
    output.report(&report, started.elapsed())?;
    Ok(if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    })
}
