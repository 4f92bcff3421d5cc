//! `tandem`: the Tandem command line.

use clap::{Parser, Subcommand};

/// Tandem command line.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write N validator home directories with a shared Tandem genesis.
    Testnet(tandem_cli::testnet::TestnetArgs),
}

fn main() -> eyre::Result<()> {
    match Cli::parse().command {
        Command::Testnet(args) => {
            let summary = tandem_cli::testnet::run(&args)?;
            println!("{summary}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testnet_defaults_parse() {
        let cli = Cli::try_parse_from([
            "tandem",
            "testnet",
            "--output",
            "/tmp/x",
            "--app-state",
            "/tmp/a.json",
        ])
        .unwrap();
        let Command::Testnet(args) = cli.command;
        assert_eq!(args.validators, 4);
        assert_eq!(args.chain_id, "tandem-testnet");
    }
}
