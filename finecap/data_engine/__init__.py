"""The data engine: FineViT-VL trained on FineCap data captions and grounds the next build.

`scene_model` trains the loop's model (synthetic scenes -> stages I-III -> an exported folder) and
caches it as the registry's `tiny:finevit-vl`; `loop` runs the whole circle for
`finecap data-engine`: train, export, build a held-out set of another seed with the trained model,
and score the build against that set's truth.
"""
