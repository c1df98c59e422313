"""The training loop shared by `xmd train` and `xmd distill`, and its parts."""
