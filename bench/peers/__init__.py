"""``python -m bench peers``: our evaluation routes against the open-source peers.

The peers (pinned versions; :mod:`bench.peers.install` finds or installs them): Unleash Edge
20.1 (crates.io), flagd 0.16.1 and the go-feature-flag relay proxy 1.55.2 (Go modules, or built
from a source checkout when the module proxy refuses them). Each gets W1, W2 and the
10,000-flag set translated into its own format (:mod:`bench.peers.translate`, which lists every
approximation), must agree with our answers on every flag no rollout decides
(:mod:`bench.peers.check`), and is then timed on the same routes with the same contexts
(:mod:`bench.peers.contexts`, :mod:`bench.peers.servers`) in interleaved rounds
(:mod:`bench.peers.run`). Not part of ``./dev test``: it takes about 5 minutes per round.
"""
