"""DreamShard / NeuroShard table placement: tasks, table features, the learned cost network, the RL placer
(REINFORCE on the estimated MDP) and NeuroShard's search, with greedy and TorchRec baselines.

Measured costs come from :mod:`ecorec.bench.placement` (a layer above): the outer training loop takes the
measuring function as an argument.
"""
