"""The joint image-sentence space (Kiros et al. 2014, as used by Vilalta et al. 2017) and its ranking loss.

Sentence: word embeddings -> GRU -> hidden state at the last real token -> L2-normalize.
Image:    features -> one linear map, no bias, Xavier init -> L2-normalize.
Score:    cosine (dot product of the two unit vectors).

The image map has no bias, so W @ x = sum over layers of W[:, layer columns] @ x[layer columns]: a score
splits exactly into per-layer contributions ("why this photo matched").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

EPS = 1e-12  # as F.normalize; the ONNX graphs use the same floor


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(EPS)


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, word_dim: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, dim, batch_first=True)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens int64 [batch, length] 0-padded, lengths int64 [batch] (each >= 1) -> [batch, dim] unit rows.

        The GRU runs over the whole padded batch; the state at position length-1 is gathered. The GRU is
        causal, so that state is exactly the one the sentence alone would give.
        """
        out, _ = self.gru(self.embed(tokens))  # [batch, length, dim]
        index = (lengths - 1).clamp_min(0).view(-1, 1, 1).expand(-1, 1, out.shape[2])
        return l2_normalize(out.gather(1, index).squeeze(1))


class LowRank(nn.Module):
    """weight [D, F] = up [D, R] @ down [R, F]: a rank-R projection that reads like nn.Linear's weight, so the
    export and the per-layer explanation see one [D, F] matrix whatever the rank."""

    def __init__(self, dim: int, feature_dim: int, rank: int):
        super().__init__()
        self.up = nn.Parameter(torch.empty(dim, rank))
        self.down = nn.Parameter(torch.empty(rank, feature_dim))
        nn.init.xavier_uniform_(self.up)
        nn.init.xavier_uniform_(self.down)

    def forward(self, _weight: torch.Tensor) -> torch.Tensor:
        return self.up @ self.down


class ImageProjection(nn.Module):
    def __init__(self, feature_dim: int, dim: int, feature_dropout: float = 0.0, rank: int = 0):
        super().__init__()
        self.linear = nn.Linear(feature_dim, dim, bias=False)
        nn.init.xavier_uniform_(self.linear.weight)
        if rank:
            # Fewer free parameters for 17k-26k inputs learnt from 6,000 photos (issue 17 section 5).
            parametrize.register_parametrization(self.linear, "weight", LowRank(dim, feature_dim, rank), unsafe=True)
        # Training only (identity in eval mode, so the exported graph is unchanged): 17k ternary inputs on
        # 6,000 images let the projection memorize the training set within a few epochs.
        self.dropout = nn.Dropout(feature_dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.linear(self.dropout(features)))


class JointSpace(nn.Module):
    def __init__(
        self, vocab_size: int, feature_dim: int, dim: int = 1024, word_dim: int = 300, feature_dropout: float = 0.0, rank: int = 0
    ):
        super().__init__()
        self.text = TextEncoder(vocab_size, word_dim, dim)
        self.image = ImageProjection(feature_dim, dim, feature_dropout, rank)

    def forward(self, features, tokens, lengths):
        return self.image(features), self.text(tokens, lengths)


def ranking_loss(
    images: torch.Tensor,
    captions: torch.Tensor,
    margin: float = 0.2,
    hardest: bool = False,
    same_image: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pairwise hinge ranking loss in both directions, summed over the batch.

    images, captions: [batch, dim] unit rows; row i of each is a matching pair.
    hardest=False (SH): sum over all negatives; hardest=True (MH, VSE++): only the hardest negative.
    same_image: optional bool [batch, batch], True where caption j describes image i. Such pairs are not
    negatives (two captions of one photo in a batch) and are left out of the hinge.
    """
    scores = images @ captions.t()  # [image, caption]
    positive = scores.diag()
    cost_caption = (margin + scores - positive.view(-1, 1)).clamp_min(0)  # image i, wrong caption j
    cost_image = (margin + scores - positive.view(1, -1)).clamp_min(0)  # caption j, wrong image i
    mask = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    if same_image is not None:
        mask = mask | same_image
    cost_caption = cost_caption.masked_fill(mask, 0)
    cost_image = cost_image.masked_fill(mask, 0)
    if hardest:
        return cost_caption.max(dim=1).values.sum() + cost_image.max(dim=0).values.sum()
    return cost_caption.sum() + cost_image.sum()


def build(vocab_size: int, feature_dim: int, dim: int, word_dim: int, feature_dropout: float = 0.0, rank: int = 0) -> JointSpace:
    return JointSpace(vocab_size, feature_dim, dim, word_dim, feature_dropout, rank)


__all__ = ["JointSpace", "TextEncoder", "ImageProjection", "ranking_loss", "l2_normalize", "build"]
