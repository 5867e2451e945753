"""An offscreen OpenGL rasteriser for rendered people: moderngl on an EGL context, which Mesa's
llvmpipe runs on the CPU with no display (chosen by measurement: docs/rendered-people.md).

One ``Renderer`` per process: it owns the GL context, the shader and the triangle list (the same
for every Anny body), and draws one posed, dressed body per call as an RGBA image with a
transparent background. Shading is Lambert under a directional light plus a sky term, with the
garment patterns and a fine fabric grain drawn in the fragment shader from each vertex's rest-pose
position, so a pattern sticks to the cloth as the body moves; photographs on the clothes
(``outfit.Fabrics``) come from a texture array sampled by the same position.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from personsearch.data.people3d.body import INSTALL_HINT
from personsearch.data.people3d.outfit import MATERIALS, Fabrics, Identity

if TYPE_CHECKING:
    import moderngl

VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat3 turn;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_rest;
in float in_material;
out vec3 v_normal;
out vec3 v_rest;
flat out int v_material;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_normal = turn * in_normal;
    v_rest = in_rest;
    v_material = int(in_material + 0.5);
}
"""

FRAGMENT_SHADER = """
#version 330
uniform vec3 base[N_MATERIALS];
uniform vec3 second[N_MATERIALS];
uniform int pattern[N_MATERIALS];
uniform float frequency[N_MATERIALS];
uniform int fabric[N_MATERIALS];
uniform float fabric_scale[N_MATERIALS];
uniform sampler2DArray photos;
uniform vec3 light_dir;
uniform vec3 light_colour;
uniform vec3 ambient;
uniform float chest_z;
uniform float chest_y;
in vec3 v_normal;
in vec3 v_rest;
flat in int v_material;
out vec4 colour;
float hash(vec3 p) { return fract(sin(dot(p, vec3(12.9898, 78.233, 37.719))) * 43758.5453); }
void main() {
    int m = v_material;
    float f = frequency[m];
    float p = 0.0;
    if (pattern[m] == 1) p = step(0.5, fract(v_rest.z * f));
    else if (pattern[m] == 2) p = step(0.5, fract(v_rest.x * f));
    else if (pattern[m] == 3) p = mod(floor(v_rest.z * f) + floor((v_rest.x + v_rest.y) * f), 2.0);
    else if (pattern[m] == 4)
        p = float(abs(v_rest.x) < 0.075 && abs(v_rest.z - chest_z) < 0.06 && v_rest.y < chest_y);
    else if (pattern[m] == 5) p = float(v_rest.z > chest_z + 0.05);
    vec3 albedo = mix(base[m], second[m], p);
    if (fabric[m] != 0) {  // a photograph's crop, wrapped around the body by rest-pose position
        vec2 uv = vec2(v_rest.x - v_rest.y, -v_rest.z) * fabric_scale[m];
        vec3 photo = texture(photos, vec3(uv, float(m))).rgb;
        if (fabric[m] == 1) albedo = mix(albedo, photo, 0.85);  // a print
        else albedo *= 2.0 * photo.r;  // a weave: the photograph's light and shade, centred on 0.5
    }
    albedo *= 0.94 + 0.12 * hash(floor(v_rest * 300.0));
    vec3 n = normalize(v_normal);
    float sun = max(dot(n, light_dir), 0.0);
    float sky = 0.55 + 0.45 * n.z;
    colour = vec4(albedo * (ambient * sky + light_colour * sun), 1.0);
}
""".replace("N_MATERIALS", str(len(MATERIALS)))


def _look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    forward = target - eye
    forward /= np.linalg.norm(forward)
    side = np.cross(forward, up)
    side /= np.linalg.norm(side)
    true_up = np.cross(side, forward)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = side, true_up, -forward
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def _perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / math.tan(fov_y / 2)
    out = np.zeros((4, 4))
    out[0, 0], out[1, 1] = f / aspect, f
    out[2, 2], out[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    out[3, 2] = -1.0
    return out


class Renderer:
    """Draws dressed bodies into a ``size`` (H, W) RGBA frame, the person filling about 85 % of its
    height, seen from ``elevation`` degrees above the horizontal and turned by ``yaw``."""

    def __init__(self, size: tuple[int, int] = (512, 256)) -> None:
        # torch._dynamo imports triton, which crashes the process if it first loads after an EGL
        # context exists (Anny's dependency roma imports it): load it before the context
        import torch._dynamo  # noqa: F401

        try:
            import moderngl
        except ImportError as err:
            raise ImportError(f"rendering people needs moderngl: {INSTALL_HINT}") from err
        try:
            # typed loosely: moderngl's stubs lag its API (no backend=), and without the extra
            # installed there are no stubs at all, so an ignore would be unused there
            create_context: Any = moderngl.create_standalone_context
            self.ctx = create_context(backend="egl")
        except Exception as err:  # moderngl/glcontext raise bare Exceptions
            raise RuntimeError(
                f"no offscreen OpenGL context ({err}): rendering people needs Mesa's EGL driver, e.g. "
                "`apt-get install libegl-mesa0 libegl1 libgl1-mesa-dri`"
            ) from err
        self.size = size
        self.program = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        height, width = size
        self.fbo = self.ctx.simple_framebuffer((width, height), components=4)
        self.vbo: moderngl.Buffer | None = None
        self.vao: moderngl.VertexArray | None = None
        self.triangles = np.zeros((0, 3), np.int32)
        self.photos: moderngl.TextureArray | None = None
        self.photos_of: int | None = None
        """The identity seed whose fabrics ``photos`` holds."""

    def _uniform(self, name: str, values: Any) -> None:
        """Set a shader uniform from numbers (float32, or int32 for an integer array)."""
        array = np.asarray(values)
        data = array.astype(np.int32 if np.issubdtype(array.dtype, np.integer) else np.float32)
        cast("moderngl.Uniform", self.program[name]).write(data.tobytes())

    def _buffers(self, count: int, triangles: np.ndarray) -> None:
        """Vertex and index buffers for this mesh: kept while the triangles stay the same (one
        identity's images share them; loose garments change them from person to person)."""
        if (
            self.vbo is not None
            and self.vbo.size == count * 10 * 4
            and np.array_equal(self.triangles, triangles)
        ):
            return
        self.triangles = triangles.copy()
        self.vbo = self.ctx.buffer(reserve=count * 10 * 4)
        self.ibo = self.ctx.buffer(triangles.astype(np.int32).tobytes())
        self.vao = self.ctx.vertex_array(
            self.program,
            [(self.vbo, "3f 3f 3f 1f", "in_pos", "in_normal", "in_rest", "in_material")],
            index_buffer=self.ibo,
        )

    def _fabrics(self, seed: int, fabrics: Fabrics | None) -> None:
        """Upload ``fabrics``' photographs (once per identity) and set which materials use them."""
        slots = len(MATERIALS)
        if fabrics is None:
            self._uniform("fabric", np.zeros(slots, np.int32))
            self._uniform("fabric_scale", np.ones(slots, np.float32))
            return
        if self.photos_of != seed or self.photos is None:
            layers, size = fabrics.pixels.shape[0], fabrics.pixels.shape[1]
            if self.photos is None or self.photos.size != (size, size, layers):
                self.photos = self.ctx.texture_array((size, size, layers), 3)
                self.photos.repeat_x = self.photos.repeat_y = True
                self.photos.filter = (self.ctx.LINEAR_MIPMAP_LINEAR, self.ctx.LINEAR)
            self.photos.write(np.ascontiguousarray(fabrics.pixels).tobytes())
            self.photos.build_mipmaps()
            self.photos_of = seed
        self._uniform("fabric", fabrics.mode.astype(np.int32))
        self._uniform("fabric_scale", fabrics.scale.astype(np.float32))

    def draw(
        self,
        identity: Identity,
        vertices: np.ndarray,
        normals: np.ndarray,
        rest: np.ndarray,
        materials: np.ndarray,
        triangles: np.ndarray,
        *,
        yaw: float,
        elevation: float,
        light: tuple[float, float, float],
        light_colour: tuple[float, float, float],
        ambient: tuple[float, float, float],
        fabrics: Fabrics | None = None,
    ) -> np.ndarray:
        """One RGBA uint8 image (H, W, 4); alpha 0 where no body is. ``fabrics``: photographs on
        the materials that take one (none without)."""
        thickness = np.array([m.thickness for m in identity.materials], np.float32)
        dressed = vertices + normals * thickness[materials][:, None]  # garments and hair stand off the skin
        self._buffers(len(vertices), triangles)
        assert self.vbo is not None and self.vao is not None
        data = np.concatenate([dressed, normals, rest, materials[:, None].astype(np.float32)], axis=1).astype(
            np.float32
        )
        self.vbo.write(data.tobytes())

        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        turn = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        low, high = dressed[:, 2].min(), dressed[:, 2].max()
        stature = float(high - low)
        centre = np.array([0.0, 0.0, (low + high) / 2])
        distance = 8.0
        e = math.radians(elevation)
        # the camera looks along +y at yaw 0: the person's front
        eye = centre + distance * np.array([0.0, -math.cos(e), math.sin(e)])
        height, width = self.size
        fov = 2 * math.atan(stature / 0.85 / 2 / distance)
        model = np.eye(4)
        model[:3, :3] = turn
        mvp = (
            _perspective(fov, width / height, 1.0, 20.0)
            @ _look_at(eye, centre, np.array([0.0, 0.0, 1.0]))
            @ model
        )

        self._uniform("mvp", mvp.T.astype(np.float32))
        self._uniform("turn", turn.T.astype(np.float32))
        self._uniform("base", np.stack([m.base for m in identity.materials]).astype(np.float32))
        self._uniform("second", np.stack([m.second for m in identity.materials]).astype(np.float32))
        self._uniform("pattern", np.array([m.pattern for m in identity.materials], np.int32))
        self._uniform("frequency", np.array([m.frequency for m in identity.materials], np.float32))
        self._fabrics(identity.seed, fabrics)
        direction = np.asarray(light, np.float64)
        self._uniform("light_dir", tuple(direction / np.linalg.norm(direction)))
        self._uniform("light_colour", light_colour)
        self._uniform("ambient", ambient)
        top = materials == MATERIALS.index("top")
        torso_z = rest[top, 2] if top.any() else rest[:, 2]
        self._uniform("chest_z", float(np.percentile(torso_z, 80)) - 0.08)
        self._uniform("chest_y", float(np.median(rest[top, 1])) if top.any() else 0.0)

        self.fbo.use()
        self.fbo.clear(0.0, 0.0, 0.0, 0.0)
        self.ctx.enable(self.ctx.DEPTH_TEST)
        if self.photos is not None:
            self.photos.use(0)
        self.vao.render()
        image = np.frombuffer(self.fbo.read(components=4), np.uint8).reshape(height, width, 4)
        return image[::-1].copy()  # GL's rows run bottom-up
