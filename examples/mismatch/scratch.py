"""The classic from-scratch logistic regression step: beta = [bias, weights]."""
import numpy as np


def step(beta, X, y, lr, lam):
    n = len(y)
    Xb = np.hstack([np.ones((n, 1)), X])
    p = 1 / (1 + np.exp(-Xb @ beta))
    data_grad = np.zeros_like(beta)
    for i in range(n):
        data_grad += (p[i] - y[i]) * Xb[i]
    grad = (data_grad + lam * beta) / n  # lam*beta for every parameter, divided by n with the data term
    return beta - lr * grad
