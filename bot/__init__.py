"""IMA video bot: the platform-neutral core."""
