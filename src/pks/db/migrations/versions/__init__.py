"""One module per revision of pks's own tables."""
