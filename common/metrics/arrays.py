"""The public metrics' one rule for array kinds: numpy arrays (or lists) in -> numpy arrays out; a torch tensor
among the inputs -> a torch tensor out, on that tensor's device."""
from __future__ import annotations

import numpy as np
import torch


def first_tensor(*inputs) -> torch.Tensor | None:
    """The first torch tensor among `inputs`, None when they are all numpy (or lists)."""
    return next((x for x in inputs if isinstance(x, torch.Tensor)), None)


def like_inputs(result, *inputs):
    """`result` (numpy or torch) in the kind the rule gives for `inputs`."""
    tensor = first_tensor(*inputs)
    if tensor is None:
        return result.cpu().numpy() if isinstance(result, torch.Tensor) else np.asarray(result)
    return result if isinstance(result, torch.Tensor) else torch.as_tensor(result, device=tensor.device)


def to_numpy(x) -> np.ndarray:
    """A numpy view (a copy from a GPU) of a numpy array, list or torch tensor."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
