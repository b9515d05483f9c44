"""The control plane: store, apiserver, scheduler, controllers."""
