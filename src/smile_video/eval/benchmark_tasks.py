"""The two tasks of the embedded benchmark: what a class is, and the motion of the objects in its clips.

- **motion**: every class shows the same objects, sizes, backgrounds and mid-clip poses (clip ``i`` of every
  class shares one *anchor*: objects, base sizes, background, and the position, angle and scale at the middle
  frame); classes differ only in how the objects move around that anchor. The frame is a torus (an object that
  leaves on one side comes back on the other, drawn as 3 x 3 wrapped copies), so positions are uniform in every
  frame of every class and a single frame's position cannot tell the direction of travel; angles are uniform on
  the circle for the same reason.
- **appearance**: classes are coarse object families of the held-out bank (flags, faces, food, ...), found by
  keyword rules on the objects' Unicode names; one object per clip with the pretraining kind of random motion.

Both tasks draw their train and val clips from one pool of held-out objects and their test clips from another,
disjoint pool (`object_pools`), so test scores are on objects no probe has seen.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

import torch

from ..motion import MotionParams

__all__ = [
    "MOTION_CLASSES",
    "FAMILY_RULES",
    "object_family",
    "appearance_families",
    "object_pools",
    "rotation_symmetry",
    "Anchors",
    "sample_anchors",
    "motion_class_params",
    "wrap_copies",
]

# name -> (direction of travel (x, y) in frame units, rotation sense (+1 = counter-clockwise on screen),
# log-scale sense (+1 = growing)). y points down, so "down" is +y.
MOTION_CLASSES: dict[str, tuple[tuple[float, float], float, float]] = {
    "move_right": ((1.0, 0.0), 0.0, 0.0),
    "move_left": ((-1.0, 0.0), 0.0, 0.0),
    "move_down": ((0.0, 1.0), 0.0, 0.0),
    "move_up": ((0.0, -1.0), 0.0, 0.0),
    "rotate_clockwise": ((0.0, 0.0), -1.0, 0.0),
    "rotate_anticlockwise": ((0.0, 0.0), 1.0, 0.0),
    "grow": ((0.0, 0.0), 0.0, 1.0),
    "shrink": ((0.0, 0.0), 0.0, -1.0),
}

# Coarse object families, first match wins. A rule is a family name and the words (of the lower-cased Unicode
# name, split at spaces and hyphens) any of which puts an object in it; "^word" matches the name's first word only.
FAMILY_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("extra", ("^openmoji",)),  # OpenMoji's own private-use glyphs: a mixed bag, never a class
    ("flag", ("^flag",)),
    ("shape", ("^shape",)),
    ("clock", ("clock", "oclock", "watch", "hourglass", "stopwatch", "timer")),
    ("hand", ("hand", "hands", "palm", "palms", "fist", "thumbs", "index", "fingers", "finger", "clapping",
              "handshake", "writing")),
    ("animal", ("cat", "dog", "monkey", "horse", "parrot", "penguin", "camel", "hamster", "chick", "bird", "fish",
                "cow", "pig", "mouse", "rabbit", "bear", "tiger", "lion", "frog", "snake", "whale", "dolphin",
                "octopus", "bug", "ant", "bee", "spider", "microbe", "turtle", "lizard", "crab", "shrimp", "squid",
                "owl", "eagle", "duck", "swan", "bat", "wolf", "fox", "deer", "goat", "sheep", "ram", "rooster",
                "chicken", "elephant", "giraffe", "zebra", "kangaroo", "sloth", "otter", "badger", "beaver",
                "hedgehog", "butterfly", "snail", "beetle", "cricket", "scorpion", "mosquito", "fly", "worm",
                "dragon", "dinosaur", "sauropod", "unicorn", "llama", "hippopotamus", "rhinoceros", "gorilla",
                "orangutan", "poodle", "dove", "peacock", "flamingo", "seal", "jellyfish", "shark", "tropical")),
    ("face", ("face", "faces")),
    ("person", ("person", "man", "woman", "men", "women", "boy", "girl", "baby", "child", "adult", "people",
                "superhero", "supervillain", "fairy", "mage", "vampire", "elf", "genie", "zombie", "troll",
                "ogre", "goblin", "lifter", "golfer", "surfer", "swimmer", "rower", "runner", "pedestrian",
                "bicyclist", "police", "guard", "worker", "teacher", "student", "cook", "farmer", "mechanic",
                "scientist", "astronaut", "firefighter", "pilot", "judge", "ninja", "prince", "princess", "bride",
                "merperson", "mermaid", "merman", "skier", "snowboarder", "dancer", "levitating", "juggling",
                "cartwheel", "wrestlers", "family", "couple", "santa", "claus", "angel", "detective")),
    ("food", ("burrito", "peach", "bowl", "spaghetti", "bacon", "garlic", "tea", "pepper", "food", "bread", "cheese",
              "pizza", "hamburger", "taco", "sushi", "rice", "noodle", "apple", "pear", "banana", "grapes", "melon",
              "watermelon", "cherries", "strawberry", "lemon", "tangerine", "pineapple", "mango", "kiwifruit",
              "tomato", "avocado", "aubergine", "eggplant", "potato", "carrot", "corn", "cucumber", "broccoli",
              "mushroom", "peanuts", "chestnut", "croissant", "baguette", "pretzel", "bagel", "pancakes",
              "waffle", "egg", "cake", "cookie", "doughnut", "candy", "lollipop", "chocolate", "honey", "milk",
              "coffee", "beverage", "wine", "beer", "cocktail", "sake", "dumpling", "fortune", "bento", "curry",
              "oden", "dango", "sandwich", "hotdog", "fries", "popcorn", "salad", "stew", "fondue", "tamale",
              "falafel", "butter", "salt", "olive", "coconut", "blueberries", "onion", "ginger", "beans", "meat",
              "poultry", "steak", "shortcake", "pie", "custard", "juice", "mate", "bubble", "pea", "jar")),
    ("vehicle", ("car", "bus", "minibus", "taxi", "lorry", "truck", "train", "tram", "monorail", "railway",
                 "locomotive", "metro", "cableway", "tramway", "aerial", "helicopter", "airplane", "rocket", "ship",
                 "boat", "sailboat", "speedboat", "canoe", "ferry", "motorcycle", "motor", "scooter", "bicycle",
                 "skateboard", "ambulance", "engine", "tractor", "automobile", "racing", "wheelchair",
                 "saucer")),
    ("building", ("building", "house", "hospital", "store", "temple", "church", "mosque", "synagogue", "kaaba",
                  "bridge", "tent", "castle", "office", "school", "bank", "hotel", "factory", "stadium", "hut",
                  "tower", "station", "post", "shrine", "wedding", "convenience", "construction")),
    ("plant", ("tree", "leaf", "leaves", "flower", "rose", "tulip", "blossom", "cactus", "herb", "clover",
               "seedling", "plant", "sunflower", "hibiscus", "bouquet", "lotus", "wood", "shamrock", "maple")),
    ("symbol", ("symbol", "sign", "circled", "squared", "arrow", "arrows", "triangle", "square", "circle", "star",
                "hexagon", "keycap", "suit", "mark", "cross", "ideograph", "letter", "digit", "entry", "rounded",
                "check", "diamond", "pentagon", "octagon", "heart", "hearts")),
)


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[\s\-_]+", name.lower()) if w]


def object_family(name: str) -> str | None:
    """The coarse family of an object from its bank category name (a Unicode name), or None if no rule matches."""
    words = _words(name)
    if not words:
        return None
    wordset = set(words)
    for family, keys in FAMILY_RULES:
        for key in keys:
            if (key.startswith("^") and words[0] == key[1:]) or key in wordset:
                return family
    return None


def appearance_families(category_names: Sequence[str], max_classes: int, min_objects: int,
                        eligible: Sequence[int] | None = None) -> tuple[list[str], list[list[int]]]:
    """Choose the appearance classes: the largest families with at least `min_objects` objects.

    Args:
        category_names: the category name of every bank object, (N,).
        max_classes: at most this many classes.
        min_objects: a family needs at least this many objects.
        eligible: object indices that may be used (default all).
    Returns:
        (family names sorted by name, object indices of each family sorted ascending).
    """
    members: dict[str, list[int]] = {}
    for i in (range(len(category_names)) if eligible is None else eligible):
        fam = object_family(category_names[i])
        if fam is not None and fam != "extra":
            members.setdefault(fam, []).append(int(i))
    big = sorted((f for f, m in members.items() if len(m) >= min_objects), key=lambda f: (-len(members[f]), f))
    chosen = sorted(big[:max_classes])
    if len(chosen) < 2:
        sizes = {f: len(m) for f, m in sorted(members.items(), key=lambda kv: -len(kv[1]))}
        raise ValueError(f"appearance task: only {len(chosen)} object families have >= {min_objects} objects "
                         f"(family sizes: {sizes}); lower appearance_min_objects")
    return chosen, [sorted(members[f]) for f in chosen]


def object_pools(names: Sequence[str], category_names: Sequence[str], test_fraction: float,
                 seed: int) -> tuple[list[int], list[int]]:
    """Partition objects into two disjoint pools: A for the train and val clips, B for the test clips.

    Objects are grouped by family (`object_family`; "extra" is a group, objects no rule matches form one more).
    Within a group of n objects, ordered by ``sha256(f"{seed}:{name}")``, the first
    ``n_B = min(n - 1, max(2 if n >= 3 else 0, floor(n * test_fraction + 0.5)))`` go to pool B, the rest to pool A.
    So every group of >= 2 objects is in both pools and every group of >= 3 has >= 2 objects in pool B. The rule
    depends only on the names and the seed (not on torch), so a pool survives a change of generator code.

    Args:
        names: each object's unique bank name, (N,).
        category_names: each object's category name (a Unicode name), (N,).
    Returns:
        (pool A, pool B): object indices, each sorted ascending; together every index once.
    """
    if len(names) != len(category_names) or len(set(names)) != len(names):
        raise ValueError("object_pools: need one category per object and unique object names")
    groups: dict[str | None, list[int]] = {}
    for i, cat in enumerate(category_names):
        groups.setdefault(object_family(cat), []).append(i)
    pool_a: list[int] = []
    pool_b: list[int] = []
    for rows in groups.values():
        n = len(rows)
        order = sorted(rows, key=lambda i: hashlib.sha256(f"{seed}:{names[i]}".encode()).hexdigest())
        n_b = min(n - 1, max(2 if n >= 3 else 0, math.floor(n * test_fraction + 0.5)))
        pool_b += order[:n_b]
        pool_a += order[n_b:]
    return sorted(pool_a), sorted(pool_b)


def rotation_symmetry(atlas: torch.Tensor, angle: float) -> torch.Tensor:
    """How much each sprite changes when rotated by `angle` degrees, relative to its own coverage.

    Args:
        atlas: (N, 4, S, S) uint8 RGBA cells.
    Returns:
        (N,) float: mean |rotated - original| over premultiplied RGBA, divided by the mean alpha. Near 0 for
        objects that look the same after the rotation (discs, rings), which would hide a rotation's sense.
    """
    import torch.nn.functional as F

    x = atlas.float() / 255.0  # (N, 4, S, S)
    x = torch.cat([x[:, :3] * x[:, 3:], x[:, 3:]], 1)  # premultiplied
    a = math.radians(angle)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    rot = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (N, 4, S, S)
    change = (rot - x).abs().mean(dim=(1, 2, 3))  # (N,)
    cover = x[:, 3].mean(dim=(1, 2)).clamp_min(1e-6)  # (N,)
    return change / cover


# -------------------------------------------------------------------------------------------------------------
class Anchors:
    """What clip ``i`` of every motion class shares: objects, base sizes and the pose at the middle frame.

    Attributes:
        object_ids: (B, K) long, atlas rows.
        sizes: (B, K, 2) float base (width, height) in pixels.
        centers: (B, K, 2) float pixel position (x, y) at the middle frame, uniform on the frame.
        angles: (B, K) float degrees at the middle frame, uniform on the circle.
    """

    def __init__(self, object_ids: torch.Tensor, sizes: torch.Tensor, centers: torch.Tensor,
                 angles: torch.Tensor) -> None:
        self.object_ids, self.sizes, self.centers, self.angles = object_ids, sizes, centers, angles


def sample_anchors(batch: int, num_objects: int, size: int, object_pool: torch.Tensor, size_range: tuple[float,
                   float], generator: torch.Generator) -> Anchors:
    """Draw `batch` anchors of `num_objects` objects each.

    Args:
        object_pool: (M,) long atlas rows to draw objects from (uniformly, with replacement).
        size_range: (low, high) base side as a fraction of the frame side.
    """
    g = generator
    b, k = batch, num_objects
    pick = torch.randint(0, len(object_pool), (b, k), generator=g)
    side = (size_range[0] + (size_range[1] - size_range[0]) * torch.rand(b, k, generator=g)) * size  # (B, K)
    centers = torch.rand(b, k, 2, generator=g) * size  # (B, K, 2)
    angles = torch.rand(b, k, generator=g) * 360.0 - 180.0  # (B, K)
    return Anchors(object_pool[pick], side.unsqueeze(-1).expand(b, k, 2).contiguous(), centers, angles)


def motion_class_params(anchors: Anchors, name: str, num_frames: int, size: int, travel: float, rotation: float,
                        scale_ratio: float) -> MotionParams:
    """The motion of class `name` around `anchors` (deterministic: no randomness beyond the anchors).

    Over the clip, translating classes travel ``travel * size`` pixels, rotating classes turn ``rotation``
    degrees and scaling classes change size by ``scale_ratio`` (growing) or its inverse, symmetrically about the
    middle frame, where every class shows the anchor pose. Positions wrap around the frame (see `wrap_copies`).

    Returns:
        MotionParams with K objects, centres wrapped into [0, size).
    """
    if name not in MOTION_CLASSES:
        raise ValueError(f"unknown motion class {name!r}; choose from {list(MOTION_CLASSES)}")
    (dx, dy), spin, grow = MOTION_CLASSES[name]
    b, k = anchors.object_ids.shape
    u = torch.linspace(-0.5, 0.5, num_frames) if num_frames > 1 else torch.zeros(1)  # (T,) time about the middle
    step = torch.tensor([dx, dy]) * travel * size  # (2,) pixels over the clip
    centers = anchors.centers[:, :, None, :] + u[None, None, :, None] * step  # (B, K, T, 2)
    centers = torch.remainder(centers, float(size))
    angles = anchors.angles[:, :, None] + spin * rotation * u  # (B, K, T)
    scales = torch.pow(torch.tensor(float(scale_ratio)), grow * u).expand(b, k, num_frames).contiguous()  # (B, K, T)
    return MotionParams(object_ids=anchors.object_ids.clone(), centers=centers.contiguous(), angles=angles,
                        scales=scales, sizes=anchors.sizes.clone())


def wrap_copies(params: MotionParams, size: int) -> MotionParams:
    """Each object repeated so that it wraps around the frame (the frame is a torus).

    An object smaller than the frame can cross at most one vertical and one horizontal border in a frame: the
    nearer ones. So 4 copies suffice, offset per frame by ``(0, 0)``, ``(ox, 0)``, ``(0, oy)`` and ``(ox, oy)``
    with ``ox = -size`` when the centre is in the right half (else ``+size``), and ``oy`` likewise. Copies outside
    the frame draw nothing. Object k becomes objects ``4 k .. 4 k + 3`` (paste order kept).

    Args:
        params: centres in [0, size). Returns MotionParams with 4 K objects.
    """
    b, k, t, _ = params.centers.shape
    away = torch.where(params.centers >= size / 2, -float(size), float(size))  # (B, K, T, 2) toward the far side
    zero = torch.zeros_like(away[..., :1])
    offsets = torch.stack([torch.zeros_like(away), torch.cat([away[..., :1], zero], -1),
                           torch.cat([zero, away[..., 1:]], -1), away], 2)  # (B, K, 4, T, 2)
    centers = params.centers[:, :, None] + offsets  # (B, K, 4, T, 2)

    def rep(x: torch.Tensor) -> torch.Tensor:  # (B, K, ...) -> (B, 4 K, ...)
        return x.unsqueeze(2).expand(b, k, 4, *x.shape[2:]).reshape(b, 4 * k, *x.shape[2:])

    return MotionParams(object_ids=rep(params.object_ids), centers=centers.reshape(b, 4 * k, t, 2),
                        angles=rep(params.angles), scales=rep(params.scales), sizes=rep(params.sizes))
