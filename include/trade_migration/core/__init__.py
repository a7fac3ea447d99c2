"""What every phase shares: settings, errors, the row model and its conversion, the token ring, sessions and I/O."""
