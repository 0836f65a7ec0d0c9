"""One package per study: its configuration, its stages and its report."""
