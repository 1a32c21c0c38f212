"""Where prompt versions and routing live: the embedded store or Redis."""
