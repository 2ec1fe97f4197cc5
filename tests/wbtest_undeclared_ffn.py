"""A plugin FFN registered without ``weights``: fine under standard, refused under mup / completep
(tests/test_parametrization.py imports it, in process and through an experiment's ``imports:``)."""

from torch import nn

from components import registry


@registry.register("ffn", "wbtest_undeclared", width="mlp", residual=("down",))
class Undeclared(nn.Module):
    """A GELU MLP that says nothing about its weights' roles."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False):
        super().__init__()
        self.up, self.down = nn.Linear(dim, hidden_dim, bias=bias), nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x):
        return self.down(nn.functional.gelu(self.up(x)))
