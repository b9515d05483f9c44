"""kemu's cluster DNS (`kemu dns`): the Kubernetes DNS specification over informer caches.

It lives at `kemu.dns`, not a top-level `dns`, because `dns` is dnspython's import name.
"""
