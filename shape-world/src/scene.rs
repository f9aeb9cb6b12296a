//! The vocabulary of the world: shapes, colours, sizes, 3×3 grid positions, relations, and
//! scenes of one or two objects. Every attribute has the words the caption grammar uses.

use serde::{Deserialize, Serialize};

/// Side of the square images, in pixels.
pub const IMAGE_SIZE: usize = 32;

/// An object's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// A filled axis-aligned square.
    Square,
    /// A filled upward-pointing isosceles triangle.
    Triangle,
}

/// An object's colour (six well-separated RGB primaries and secondaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Colour {
    /// (220, 30, 30)
    Red,
    /// (30, 180, 30)
    Green,
    /// (30, 60, 230)
    Blue,
    /// (235, 220, 30)
    Yellow,
    /// (220, 40, 220)
    Magenta,
    /// (30, 210, 220)
    Cyan,
}

/// An object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// 7 px across.
    Small,
    /// 11 px across.
    Large,
}

/// A cell of the 3×3 grid: `row` 0 = top, `col` 0 = left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    /// 0 (top) … 2 (bottom).
    pub row: u8,
    /// 0 (left) … 2 (right).
    pub col: u8,
}

/// How the first object of a two-object scene relates to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// First object's column is left of the second's.
    LeftOf,
    /// First object's column is right of the second's.
    RightOf,
    /// First object's row is above the second's.
    Above,
    /// First object's row is below the second's.
    Below,
}

/// One object of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Object {
    /// Shape.
    pub shape: Shape,
    /// Colour.
    pub colour: Colour,
    /// Size.
    pub size: Size,
    /// Grid cell.
    pub cell: Cell,
}

/// A scene: a plain background and one or two objects (in distinct cells, distinct colours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scene {
    /// Background grey level (one of [`BACKGROUNDS`]).
    pub background: u8,
    /// One or two objects.
    pub objects: Vec<Object>,
    /// For two objects: how the first relates to the second (a relation that holds).
    pub relation: Option<Relation>,
}

/// Grey levels used for backgrounds.
pub const BACKGROUNDS: [u8; 3] = [20, 128, 240];

impl Shape {
    /// All shapes.
    pub const ALL: [Shape; 3] = [Shape::Circle, Shape::Square, Shape::Triangle];
    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
        }
    }
}

impl Colour {
    /// All colours.
    pub const ALL: [Colour; 6] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Magenta,
        Colour::Cyan,
    ];
    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Magenta => "magenta",
            Colour::Cyan => "cyan",
        }
    }
    /// The rendered RGB value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 30],
            Colour::Green => [30, 180, 30],
            Colour::Blue => [30, 60, 230],
            Colour::Yellow => [235, 220, 30],
            Colour::Magenta => [220, 40, 220],
            Colour::Cyan => [30, 210, 220],
        }
    }
}

impl Size {
    /// All sizes.
    pub const ALL: [Size; 2] = [Size::Small, Size::Large];
    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }
    /// Bounding-box side in pixels.
    pub fn pixels(self) -> usize {
        match self {
            Size::Small => 7,
            Size::Large => 11,
        }
    }
}

impl Cell {
    /// All nine cells, row-major.
    pub fn all() -> impl Iterator<Item = Cell> {
        (0..3).flat_map(|row| (0..3).map(move |col| Cell { row, col }))
    }
    /// "top left", "center", "bottom", …
    pub fn words(self) -> &'static str {
        const WORDS: [[&str; 3]; 3] = [
            ["top left", "top", "top right"],
            ["left", "center", "right"],
            ["bottom left", "bottom", "bottom right"],
        ];
        WORDS[self.row as usize][self.col as usize]
    }
    /// Pixel coordinates of the cell centre.
    pub fn centre(self) -> (f32, f32) {
        let step = IMAGE_SIZE as f32 / 3.0;
        (
            (self.col as f32 + 0.5) * step,
            (self.row as f32 + 0.5) * step,
        )
    }
}

impl Relation {
    /// All relations.
    pub const ALL: [Relation; 4] = [
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
    ];
    /// The caption words.
    pub fn words(self) -> &'static str {
        match self {
            Relation::LeftOf => "left of",
            Relation::RightOf => "right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }
    /// Whether the relation holds between cells `a` (first) and `b` (second).
    pub fn holds(self, a: Cell, b: Cell) -> bool {
        match self {
            Relation::LeftOf => a.col < b.col,
            Relation::RightOf => a.col > b.col,
            Relation::Above => a.row < b.row,
            Relation::Below => a.row > b.row,
        }
    }
}
