"""The plan's recipe digest (what the layer cache keys on) and the zstd twin of a gzip plan."""

from __future__ import annotations

from slimmer.fs.scan import scan_layer
from slimmer.oci.media import GZIP, ZSTD
from slimmer.plan.image import plan_image, variant_plan
from slimmer.plan.model import PASSTHROUGH, REBUILD, RECOMPRESS, ImagePlan, PlanOptions
from slimmer.profiles import Matcher

from support.memimage import MemSource, make_tar

TARS = [make_tar([("dir", "a"), ("file", "a/x", b"1" * 300), ("file", "a/doc.md", b"d" * 300)]),
        make_tar([("file", "b", b"b" * 100), ("hardlink", "c", "a/x")]),
        make_tar([("file", "top", b"t" * 100)])]


def plan(tars: list[bytes], options: PlanOptions, strip: tuple[str, ...] = ()) -> ImagePlan:
    image = MemSource(tars).image
    indexes = {i: scan_layer(ly, None, 0, 4096) for i, ly in enumerate(image.layers)}
    matcher = Matcher([], list(strip), []) if strip else None
    return plan_image([ly.descriptor.size for ly in image.layers],
                      [ly.descriptor.media_type for ly in image.layers], indexes, matcher,
                      image.config, options)


def digests(p: ImagePlan) -> list[str]:
    return [ly.recipe_digest() for ly in p.layers]


def test_recipe_digest_is_stable_and_follows_the_ops() -> None:
    merged = PlanOptions(merge="all", base=1, compression="gzip")
    assert digests(plan(TARS, merged)) == digests(plan(TARS, merged))
    stripped = plan(TARS, merged, ("/a/doc.md",))
    assert digests(stripped)[1] == digests(plan(TARS, merged))[1]       # untouched layer
    assert digests(stripped)[0] != digests(plan(TARS, merged))[0]       # one entry dropped
    assert digests(plan(TARS, PlanOptions(merge="none", compression="gzip"))) != \
        digests(plan(TARS, merged))
    # The same recipe over other tars is the same digest: the cache key adds their diff_ids.
    other = [TARS[0], make_tar([("file", "b", b"B" * 100), ("hardlink", "c", "a/x")]), TARS[2]]
    assert digests(plan(other, merged)) == digests(plan(TARS, merged))


def test_sources_name_the_layers_hardlink_data_comes_from() -> None:
    p = plan(TARS, PlanOptions(merge="none", compression="gzip"), ("/a/x",))
    layer = p.layers[1]
    assert layer.mode == REBUILD and layer.inputs == (1,)
    assert layer.sources == (0, 1)           # c's data is fetched from layer 0


def test_zstd_twin_of_a_gzip_plan() -> None:
    zstd_tar = make_tar([("file", "z", b"z" * 50)])
    image = MemSource(TARS + [zstd_tar]).image
    media = [ly.descriptor.media_type for ly in image.layers]
    media[3] = media[3].replace("gzip", "zstd")
    sizes = [ly.descriptor.size for ly in image.layers]
    gzip_opts = PlanOptions(merge="none", compression="gzip")
    base = plan_image(sizes, media, None, None, image.config, gzip_opts)
    twin = variant_plan(base, sizes, media, None, PlanOptions(merge="none", compression="zstd"))
    assert [(ly.mode, ly.compression) for ly in base.layers] == \
        [(PASSTHROUGH, GZIP)] * 3 + [(RECOMPRESS, GZIP)]
    assert [(ly.mode, ly.compression) for ly in twin.layers] == \
        [(RECOMPRESS, ZSTD)] * 3 + [(PASSTHROUGH, ZSTD)]
    stripped = plan(TARS, PlanOptions(merge="all", base=1, compression="gzip"), ("/a/doc.md",))
    image = MemSource(TARS).image
    twin = variant_plan(stripped, [ly.descriptor.size for ly in image.layers],
                        [ly.descriptor.media_type for ly in image.layers], None,
                        PlanOptions(compression="zstd"))
    assert [ly.compression for ly in twin.layers if ly.mode == REBUILD] == [ZSTD, ZSTD]
    assert digests(twin) == digests(stripped)     # same recipe, other compression
