"""The lecture, "Neural Networks and Backpropagation", as code a student can read alone.

This package imports nothing from the rest of cs_nets but its error types
(tests/test_architecture.py holds it to that). Read it in this order:

    gates.py          the computational graph's gates: add, multiply, max, sigmoid,
                      each a forward/backward pair (upstream gradient x local gradient)
    activations.py    ReLU, leaky ReLU, sigmoid, tanh, ELU, GELU as forward/backward pairs
    losses.py         the multiclass SVM and Softmax losses (with plain-loop twins), L2
    models/linear.py  scores = X W + b
    models/two_layer.py  a two-layer net with flat, staged backprop: every intermediate named
    layers.py         the same computation as modular forward/backward pairs with caches
    models/fc_net.py  a net of any depth stacked from those layers
    grads_out.py      where a loss call hands over its gradients
    optim.py          update rules rule(w, dw, config): SGD, momentum, Nesterov; schedules
    gradcheck.py      numerical gradients, and the check that analytic ones match them
    random_search.py  the lecture's first optimization strategy: random weights

Every model is a dict of parameters plus ``loss(X, y=None)``: scores when y is None,
else ``(loss, grads)`` with grads keyed like the parameters.
"""
