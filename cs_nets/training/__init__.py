"""Training: the minibatch SGD loop (trainer.py), its saved state (state.py) and scores (metrics.py).

The update rules applied inside the backward pass (_fused_step.py) and the BLAS calls
they make (_blas.py) are private to this package: they compute exactly the rules of
cs_nets.nn.optim (tests/test_fast_path.py, tests/test_update_contract.py).
"""
