"""`pyswarm` subcommands: parse, call the node's swarm daemon (`orchestrator.client`), render."""
