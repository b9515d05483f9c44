"""The controller manager: controllers that drive the cluster toward its declared state."""
