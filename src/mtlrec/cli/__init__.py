"""Command-line interface: one module per subcommand, each with NAME and run()."""
