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
    /// Run the whole stack on this machine, on loopback: tandemd under tandem-solo, and
    /// tandem-evm beside them.
    Devnet(tandem_cli::devnet::DevnetArgs),
}

fn main() -> eyre::Result<()> {
    match Cli::parse().command {
        Command::Testnet(args) => {
            let summary = tandem_cli::testnet::run(&args)?;
            println!("{summary}");
            Ok(())
        }
        Command::Devnet(args) => tandem_cli::devnet::main(&args),
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
        let Command::Testnet(args) = cli.command else {
            panic!("parsed as another command: {:?}", cli.command);
        };
        assert_eq!(args.validators, 4);
        assert_eq!(args.chain_id, "tandem-testnet");
    }

    #[test]
    fn devnet_defaults_parse() {
        let cli = Cli::try_parse_from(["tandem", "devnet"]).unwrap();
        let Command::Devnet(args) = cli.command else {
            panic!("parsed as another command: {:?}", cli.command);
        };
        assert_eq!(args.home, std::path::PathBuf::from(".tandem-devnet"));
        assert_eq!(
            (args.rpc_port, args.grpc_port, args.eth_rpc_port),
            (26657, 9090, 8545)
        );
        assert!(!args.reset);
    }
}
