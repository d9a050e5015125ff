"""core.train.callbacks.EMA: the average it keeps, and what a test after training scores."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from core.train.callbacks import EMA


class _Regression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.tested: list[float] = []

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def test_step(self, batch, _):
        x, y = batch
        self.tested.append(float(nn.functional.mse_loss(self.net(x), y)))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _RawWeights(L.Callback):
    """The trained (not averaged) weights after every optimizer step."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.steps.append(torch.cat([p.detach().flatten().clone() for p in pl_module.parameters()]))


def _data(seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(48, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(48, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=8)


def _trainer(tmp_path, *callbacks) -> L.Trainer:
    return L.Trainer(max_steps=6, callbacks=list(callbacks), default_root_dir=tmp_path, logger=False,
                     enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


def test_the_average_follows_the_ema_recurrence_from_its_first_step(tmp_path):
    torch.manual_seed(0)
    model, raw = _Regression(), _RawWeights()
    _trainer(tmp_path, raw, EMA(decay=0.9, start=2)).fit(model, _data())
    assert len(raw.steps) == 6
    want = raw.steps[2].clone()  # the first averaged step is copied, later ones mixed in at 1 - decay
    for w in raw.steps[3:]:
        want = 0.9 * want + 0.1 * w
    got = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, raw.steps[-1], atol=1e-3)  # the average is not the last step


def test_a_test_after_training_scores_the_average_the_checkpoint_holds(tmp_path):
    """Lightning's own callback restores the raw weights kept for resuming when a checkpoint is loaded for
    testing; the checkpoint's state_dict (what mas-eval and mas-predict load) holds the average."""
    torch.manual_seed(0)
    model = _Regression()
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = _trainer(tmp_path, EMA(decay=0.8), ckpt)
    trainer.fit(model, _data())
    trainer.test(model, _data(1), ckpt_path="last", verbose=False)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    average = {k.removeprefix("net."): v for k, v in saved["state_dict"].items()}
    raw = {k.removeprefix("net."): v for k, v in saved["current_model_state"].items()}
    assert not torch.allclose(average["weight"], raw["weight"], atol=1e-3)
    for name, value in model.net.state_dict().items():
        assert torch.equal(value, average[name])
    x, y = next(iter(DataLoader(_data(1).dataset, batch_size=48)))
    expected = nn.functional.mse_loss(x @ average["weight"].T + average["bias"], y)
    assert abs(sum(model.tested) / len(model.tested) - float(expected)) < 1e-5
