"""Residual quantiser and RQ-VAE (eq. 6-10): tiny synthetic data, CPU, a few optimisation steps."""
from __future__ import annotations

import pytest
import torch

from mmgrec_lib.tokenizer.rqvae import RQVAE, ResidualQuantizer, kmeans_centroids, squared_distances, train_rqvae


def clustered(n: int = 120, d: int = 6, k: int = 8, offset: float = 0.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 3
    return centers[torch.randint(k, (n,), generator=g)] + 0.2 * torch.randn(n, d, generator=g) + offset


def test_codes_in_range_and_shapes():
    model = RQVAE(6, latent_dim=4, hidden_dim=16, codebook_size=5, n_levels=3, seed=0)
    x = clustered()
    out = model(x)
    assert out.codes.shape == (120, 3) and out.codes.dtype == torch.long
    assert out.x_hat.shape == x.shape and out.z.shape == out.z_hat.shape == (120, 4)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 5
    codes = model.encode(x)
    assert ((codes >= 0) & (codes < 5)).all()


def test_residuals_follow_eq8():
    q = ResidualQuantizer(4, 6, n_levels=3, kmeans_init=True, reseed_dead=False, seed=1)
    z = clustered(50, 4)
    out = q(z)                                                   # training mode: k-means init happens here
    assert torch.equal(out.residuals[0], z)
    z_hat = torch.zeros_like(z)
    for m in range(3):
        b = q.codebooks[m].detach()[out.codes[:, m]]
        # nearest codeword (eq. 7)
        assert torch.equal(out.codes[:, m], squared_distances(out.residuals[m], q.codebooks[m].detach()).argmin(-1))
        if m + 1 < 3:
            assert torch.allclose(out.residuals[m + 1], out.residuals[m] - b, atol=1e-5)
        z_hat = z_hat + b
    assert torch.allclose(out.z_hat, z_hat, atol=1e-5)


def test_tied_codewords_pick_the_lowest_index_as_argmin_does():
    """Duplicated codewords tie exactly; the quantiser takes the first of them, as ``argmin`` would (it uses
    ``min(-1).indices``, the same index, faster on CPU)."""
    q = ResidualQuantizer(3, 6, n_levels=2, kmeans_init=False, reseed_dead=False, seed=0)
    with torch.no_grad():
        q.codebooks[:, 3:] = q.codebooks[:, :3].clone()                     # codes 3-5 repeat codes 0-2
    z = clustered(64, 3, seed=4)
    out = q(z)
    assert int(out.codes.max()) < 3                                         # never a later duplicate
    for m in range(2):
        assert torch.equal(out.codes[:, m], squared_distances(out.residuals[m], q.codebooks[m].detach()).argmin(-1))


def test_straight_through_gradients():
    model = RQVAE(6, latent_dim=4, hidden_dim=8, codebook_size=4, seed=0)
    x = clustered(40)
    out = model(x)
    out.recon_loss.backward()
    # eq. 9: reconstruction reaches the encoder through sg(), not the codebooks
    assert model.encoder[0].weight.grad is not None and model.encoder[0].weight.grad.abs().sum() > 0
    assert model.quantizer.codebooks.grad is None
    model.zero_grad()
    model(x).codebook_loss.backward()
    assert model.quantizer.codebooks.grad.abs().sum() > 0
    assert model.encoder[0].weight.grad is None or model.encoder[0].weight.grad.abs().sum() == 0


def test_reconstruction_loss_falls():
    x = clustered(160, 6, k=8)
    model = RQVAE(6, latent_dim=4, hidden_dim=32, codebook_size=8, n_levels=3, seed=0)
    before = model.reconstruction_error(x)
    hist = train_rqvae(model, x, epochs=60, lr=1e-2)
    after = model.reconstruction_error(x)
    assert after < 0.5 * before
    assert hist[-1]["recon"] < hist[0]["recon"]


def test_same_seed_same_codes():
    x = clustered(80)
    codes = []
    for _ in range(2):
        m = RQVAE(6, latent_dim=4, hidden_dim=16, codebook_size=6, seed=3)
        train_rqvae(m, x, epochs=5, lr=1e-2, batch_size=32)
        codes.append(m.encode(x))
    assert torch.equal(codes[0], codes[1])


def test_state_dict_round_trip_keeps_codebooks_and_generator():
    x = clustered(60, 4)
    q = ResidualQuantizer(4, 8, seed=0)
    q(x)
    q2 = ResidualQuantizer(4, 8, seed=99)
    q2.load_state_dict(q.state_dict())
    assert bool(q2.initted.all()) and torch.equal(q2.codebooks, q.codebooks)
    assert torch.equal(q2._gen.get_state(), q._gen.get_state())
    assert torch.equal(q2.encode(x), q.encode(x))


def _used(q: ResidualQuantizer, z: torch.Tensor) -> list[int]:
    codes = q.encode(z)
    return [len(torch.unique(codes[:, m])) for m in range(q.n_levels)]


@pytest.mark.parametrize("kmeans_init,reseed", [(True, False), (False, True), (True, True)])
def test_kmeans_init_and_reseeding_prevent_collapse(kmeans_init, reseed):
    # data far from the random [-1/L, 1/L] initialisation: every item picks the same code at every level
    z = clustered(96, 4, k=8, offset=50.0)
    base = ResidualQuantizer(4, 8, kmeans_init=False, reseed_dead=False, seed=0)
    fixed = ResidualQuantizer(4, 8, kmeans_init=kmeans_init, reseed_dead=reseed, seed=0)
    for q in (base, fixed):
        opt = torch.optim.SGD(q.parameters(), lr=0.1)
        for _ in range(4):
            out = q(z)
            opt.zero_grad()
            out.codebook_loss.backward()
            opt.step()
    assert _used(base, z)[:2] == [1, 1]                          # collapsed: one code at levels 1 and 2
    used = _used(fixed, z)
    assert used[0] >= 6 and sum(used) >= 12                      # of 8 codes per level
    n_reseeded = int(fixed.n_reseeded.sum())
    if not reseed:
        assert n_reseeded == 0
    elif not kmeans_init:
        assert n_reseeded > 0                                    # the collapsed codes were re-seeded


def test_kmeans_centroids_with_few_distinct_points():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    c = kmeans_centroids(x, 5, seed=0, generator=g)
    assert c.shape == (5, 2)
    assert {tuple(r) for r in c[:2].tolist()} == {(0.0, 0.0), (1.0, 1.0)}


def test_bad_inputs():
    with pytest.raises(ValueError, match="codebook_size"):
        ResidualQuantizer(4, 0)
    with pytest.raises(ValueError, match="beta"):
        RQVAE(4, beta=-1.0)
    model = RQVAE(4, latent_dim=2, hidden_dim=4, codebook_size=3)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        model(torch.zeros(3, 5))


@pytest.mark.parametrize("shape", [(513, 7, 5), (1682, 128, 32)])
def test_squared_distances_are_the_three_pass_expression_bit_for_bit(shape):
    """The fused form must give the values of |x|^2 - 2 x c^T + |c|^2 exactly (committed Rec-IDs depend on every
    argmin), and be the squared Euclidean distances."""
    B, L, d = shape
    g = torch.Generator().manual_seed(B)
    for scale in (0.1, 1.0, 10.0):
        x, c = torch.randn(B, d, generator=g) * scale, torch.randn(L, d, generator=g) * scale
        reference = (x.pow(2).sum(-1, keepdim=True) - 2.0 * x @ c.t() + c.pow(2).sum(-1)[None, :]).clamp_min_(0.0)
        got = squared_distances(x, c)
        assert got.shape == (B, L) and torch.equal(got, reference)
        torch.testing.assert_close(got, torch.cdist(x.double(), c.double()).pow(2).float(), rtol=1e-4, atol=1e-3 * scale ** 2)


@pytest.mark.parametrize("threads", [1, 2])
def test_codeword_gather_gradients_equal_indexing_bit_for_bit(threads):
    """The quantiser gathers each item's codeword with ``index_select`` (its backward, ``index_add_``, is cheaper
    than indexing's ``index_put_``): the codebooks' gradient equals that of ``book[idx]`` bit for bit, with
    thousands of items on few codes, on one thread and on two (deterministic algorithms, as ``cpu_threads`` sets
    them)."""
    from mmgrec_lib.training.loop import cpu_threads

    g = torch.Generator().manual_seed(3)
    book = torch.randn(16, 5, generator=g, requires_grad=True)
    idx = torch.randint(16, (5000,), generator=g)
    up = torch.randn(5000, 5, generator=g)
    with cpu_threads(threads):
        (book.index_select(0, idx) * up).sum().backward()
        got, book.grad = book.grad.clone(), None
        (book[idx] * up).sum().backward()
    assert torch.equal(got, book.grad)


def test_kmeans_initialisation_time_is_recorded_once_and_not_saved():
    q = ResidualQuantizer(4, 6, n_levels=2, kmeans_init=True, seed=0)
    assert q.init_seconds == 0.0
    q(clustered(50, 4))                                          # first training forward: k-means for both levels
    first = q.init_seconds
    assert first > 0
    q(clustered(50, 4, seed=1))
    assert q.init_seconds == first and "init_seconds" not in str(list(q.state_dict()))
    plain = ResidualQuantizer(4, 6, kmeans_init=False)
    plain(clustered(50, 4))
    assert plain.init_seconds == 0.0                             # no k-means, nothing recorded
