//! A minimal, data-only reader of the Python pickle format (protocols 2–5, as described by
//! CPython's `Lib/pickletools.py`) for the `data.pkl` of a PyTorch checkpoint.
//!
//! It understands the opcodes `torch.save` emits for state dicts and training checkpoints
//! (containers, strings, numbers, `GLOBAL`/`STACK_GLOBAL`, `REDUCE`, `BUILD`, `BINPERSID`, the
//! memo) and refuses every other opcode by name. Nothing is ever executed: a `GLOBAL` is only a
//! name and `REDUCE` only records "this callable with these arguments"; the caller interprets
//! the few callables it knows (tensor rebuilds, `OrderedDict`).
//!
//! Hostile input is bounded before anything is allocated: every length is checked against the
//! bytes that remain, containers may nest at most [`MAX_DEPTH`] levels (so neither building nor
//! dropping a value can overflow the stack), and values are shared, not copied, when the memo
//! returns them (so a small file cannot expand into a huge one).

use std::collections::HashMap;
use std::rc::Rc;

/// Deepest container nesting accepted (PyTorch checkpoints use about ten levels).
pub(crate) const MAX_DEPTH: u32 = 64;

/// A pickled value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Obj>),
    /// A tuple.
    Tuple(Vec<Obj>),
    /// A dict (also an `OrderedDict`), in insertion order.
    Dict(Vec<(Obj, Obj)>),
    /// A module-level name (`torch._utils._rebuild_tensor_v2`).
    Global {
        /// Its module.
        module: String,
        /// Its name.
        name: String,
    },
    /// `callable(*args)`, not evaluated.
    Reduce {
        /// The callable (usually a `Global`).
        callable: Obj,
        /// Its arguments (a tuple).
        args: Obj,
    },
    /// `object.__setstate__(state)`, not evaluated.
    Build {
        /// The object.
        object: Obj,
        /// Its state.
        state: Obj,
    },
    /// A persistent id (PyTorch: a tuple describing a storage).
    PersistentId(Obj),
}

/// A shared value with its nesting depth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The value.
    pub value: Value,
    depth: u32,
}

/// A shared, immutable-by-default value.
pub(crate) type Obj = Rc<Node>;

impl Node {
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.value {
            Value::Int(i) => Some(i),
            Value::Bool(b) => Some(b as i64),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Obj]> {
        match &self.value {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// `(module, name)` of a global.
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match &self.value {
            Value::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }
}

fn leaf(value: Value) -> Obj {
    Rc::new(Node { value, depth: 0 })
}

fn container(value: Value, children: impl Iterator<Item = u32>) -> Result<Obj, String> {
    let depth = children.max().map_or(1, |d| d + 1);
    if depth > MAX_DEPTH {
        return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
    }
    Ok(Rc::new(Node { value, depth }))
}

enum Item {
    Mark,
    Obj(Obj),
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    memo: HashMap<u32, Obj>,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.bytes.len() - self.pos {
            return Err(format!(
                "byte {}: a length of {n} runs past the end of the pickle ({} bytes left)",
                self.pos,
                self.bytes.len() - self.pos
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    fn len64(&mut self) -> Result<usize, String> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| format!("length {n} does not fit memory"))
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("GLOBAL name without a newline")?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| "GLOBAL name is not UTF-8")?;
        self.pos += end + 1;
        Ok(s)
    }

    fn push(&mut self, o: Obj) {
        self.stack.push(Item::Obj(o));
    }

    fn pop(&mut self) -> Result<Obj, String> {
        match self.stack.pop() {
            Some(Item::Obj(o)) => Ok(o),
            Some(Item::Mark) => Err(format!("byte {}: unexpected MARK on the stack", self.pos)),
            None => Err(format!("byte {}: the stack is empty", self.pos)),
        }
    }

    fn top(&mut self) -> Result<&mut Obj, String> {
        match self.stack.last_mut() {
            Some(Item::Obj(o)) => Ok(o),
            _ => Err(format!("byte {}: no value on top of the stack", self.pos)),
        }
    }

    /// Pops everything above the topmost mark (and the mark).
    fn pop_mark(&mut self) -> Result<Vec<Obj>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|i| matches!(i, Item::Mark))
            .ok_or_else(|| format!("byte {}: no MARK on the stack", self.pos))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|i| match i {
                Item::Obj(o) => o,
                Item::Mark => unreachable!("marks above the topmost one"),
            })
            .collect())
    }

    fn text(bytes: &[u8]) -> Result<Obj, String> {
        String::from_utf8(bytes.to_vec())
            .map(|s| leaf(Value::Str(s)))
            .map_err(|_| "string is not UTF-8".to_string())
    }

    fn long(bytes: &[u8]) -> Result<Obj, String> {
        if bytes.len() > 8 {
            return Err(format!("integer of {} bytes is too large", bytes.len()));
        }
        if bytes.is_empty() {
            return Ok(leaf(Value::Int(0)));
        }
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut buf = [if negative { 0xff } else { 0 }; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(leaf(Value::Int(i64::from_le_bytes(buf))))
    }

    fn add_to_list(list: &mut Obj, items: Vec<Obj>) -> Result<(), String> {
        let deepest = items.iter().map(|i| i.depth).max().unwrap_or(0);
        if deepest + 1 > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        let node = Rc::make_mut(list);
        match &mut node.value {
            Value::List(v) => v.extend(items),
            other => return Err(format!("APPEND to a {}", kind(other))),
        }
        node.depth = node.depth.max(deepest + 1);
        Ok(())
    }

    fn add_to_dict(dict: &mut Obj, items: Vec<Obj>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of values".into());
        }
        let deepest = items.iter().map(|i| i.depth).max().unwrap_or(0);
        if deepest + 1 > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        let node = Rc::make_mut(dict);
        match &mut node.value {
            Value::Dict(v) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(val)) = (it.next(), it.next()) {
                    v.push((k, val));
                }
            }
            other => return Err(format!("SETITEM on a {}", kind(other))),
        }
        node.depth = node.depth.max(deepest + 1);
        Ok(())
    }

    fn run(mut self) -> Result<Obj, String> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Item::Mark),
                b'}' => self.push(container(Value::Dict(vec![]), std::iter::empty())?),
                b']' => self.push(container(Value::List(vec![]), std::iter::empty())?),
                b')' => self.push(container(Value::Tuple(vec![]), std::iter::empty())?),
                b'N' => self.push(leaf(Value::None)),
                0x88 => self.push(leaf(Value::Bool(true))),
                0x89 => self.push(leaf(Value::Bool(false))),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(leaf(Value::Int(v as i64)))
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(leaf(Value::Int(v as i64)))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(leaf(Value::Int(v as i64)))
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.push(Self::long(b)?)
                }
                0x8b => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?;
                    self.push(Self::long(b)?)
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8"));
                    self.push(leaf(Value::Float(v)))
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?;
                    self.push(Self::text(b)?)
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.push(Self::text(b)?)
                }
                0x8d => {
                    let n = self.len64()?;
                    let b = self.take(n)?;
                    self.push(Self::text(b)?)
                }
                b'U' | b'T' => {
                    // Python 2 byte strings (old checkpoints): treated as Latin-1 text.
                    let n = if op == b'U' {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    self.push(leaf(Value::Str(b.iter().map(|&c| c as char).collect())))
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => self.u8()? as usize,
                        b'B' => self.u32()? as usize,
                        _ => self.len64()?,
                    };
                    let b = self.take(n)?;
                    self.push(leaf(Value::Bytes(b.to_vec())))
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.push(leaf(Value::Global { module, name }))
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => self.push(leaf(Value::Global {
                            module: m.into(),
                            name: n.into(),
                        })),
                        _ => return Err(format!("byte {at}: STACK_GLOBAL needs two strings")),
                    }
                }
                b'Q' => {
                    let id = self.pop()?;
                    let d = id.depth;
                    self.push(container(Value::PersistentId(id), std::iter::once(d))?)
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    // The one callable whose result must be a real container: SETITEMS
                    // follows on it.
                    if callable.as_global() == Some(("collections", "OrderedDict")) {
                        self.push(container(Value::Dict(vec![]), std::iter::empty())?);
                    } else {
                        let d = [callable.depth, args.depth];
                        self.push(container(Value::Reduce { callable, args }, d.into_iter())?)
                    }
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let d = [cls.depth, args.depth];
                    self.push(container(
                        Value::Reduce {
                            callable: cls,
                            args,
                        },
                        d.into_iter(),
                    )?)
                }
                b'b' => {
                    let state = self.pop()?;
                    let object = self.pop()?;
                    if matches!(object.value, Value::Dict(_)) {
                        // OrderedDict metadata (`_metadata`): irrelevant to the tensors.
                        self.push(object);
                    } else {
                        let d = [object.depth, state.depth];
                        self.push(container(Value::Build { object, state }, d.into_iter())?)
                    }
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let d: Vec<u32> = items.iter().map(|i| i.depth).collect();
                    self.push(container(Value::Tuple(items), d.into_iter())?)
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let d: Vec<u32> = items.iter().map(|i| i.depth).collect();
                    self.push(container(Value::Tuple(items), d.into_iter())?)
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let d: Vec<u32> = items.iter().map(|i| i.depth).collect();
                    self.push(container(Value::List(items), d.into_iter())?)
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let mut dict = container(Value::Dict(vec![]), std::iter::empty())?;
                    Self::add_to_dict(&mut dict, items)?;
                    self.push(dict)
                }
                b'a' => {
                    let item = self.pop()?;
                    Self::add_to_list(self.top()?, vec![item])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    Self::add_to_list(self.top()?, items)?
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    Self::add_to_dict(self.top()?, vec![key, value])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    Self::add_to_dict(self.top()?, items)?
                }
                b'q' | b'r' | 0x94 => {
                    let key = match op {
                        b'q' => self.u8()? as u32,
                        b'r' => self.u32()?,
                        _ => self.memo.len() as u32,
                    };
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'h' | b'j' => {
                    let key = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let v =
                        self.memo.get(&key).cloned().ok_or_else(|| {
                            format!("byte {at}: memo entry {key} was never stored")
                        })?;
                    self.push(v)
                }
                b'0' => {
                    self.stack
                        .pop()
                        .ok_or_else(|| format!("byte {at}: POP on an empty stack"))?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)
                }
                other => {
                    return Err(format!(
                        "byte {at}: opcode 0x{other:02x} ({}) is not one that torch.save writes",
                        opcode_name(other)
                    ));
                }
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Dict(_) => "dict",
        Value::Global { .. } => "global",
        Value::Reduce { .. } => "reduce",
        Value::Build { .. } => "build",
        Value::PersistentId(_) => "persistent id",
    }
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        b'I' => "INT",
        b'L' => "LONG",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'P' => "PERSID",
        b'i' => "INST",
        b'o' => "OBJ",
        b'g' => "GET",
        b'p' => "PUT",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}

/// Reads one pickled value from `bytes`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Obj, String> {
    Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    }
    .run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_containers_and_the_memo() {
        // {'a': [1, 2**40], 'b': ('x', None)} with a memoised key, protocol 2
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'(', b'X', 1, 0, 0, 0, b'a', b'q', 1,
        ];
        p.extend([b']', b'(', b'K', 1, 0x8a, 6, 0, 0, 0, 0, 0, 1, b'e']);
        p.extend([0x8c, 1, b'b', 0x8c, 1, b'x', b'N', 0x86, b'u', b'.']);
        let v = parse(&p).unwrap();
        let Value::Dict(items) = &v.value else {
            panic!("{v:?}")
        };
        assert_eq!(items[0].0.as_str(), Some("a"));
        let list = items[0].1.as_seq().unwrap();
        assert_eq!(list[1].as_int(), Some(1 << 40));
        assert_eq!(items[1].1.as_seq().unwrap()[0].as_str(), Some("x"));
    }

    #[test]
    fn hostile_pickles_are_errors() {
        // A string claiming 4 GiB in a 10-byte file.
        assert!(
            parse(&[0x80, 2, b'X', 0xff, 0xff, 0xff, 0xff, b'a', b'.'])
                .unwrap_err()
                .contains("runs past the end")
        );
        // A list nested a million levels deep.
        let mut nest = vec![0x80, 2];
        nest.extend(std::iter::repeat_n(b']', 1_000_000));
        nest.extend(std::iter::repeat_n(b'a', 999_999));
        nest.push(b'.');
        assert!(parse(&nest).unwrap_err().contains("nest deeper"));
        // Code-execution opcodes are refused by name.
        assert!(
            parse(&[0x80, 2, b'i', b'o', b's', b'\n'])
                .unwrap_err()
                .contains("INST")
        );
        // Empty and truncated input.
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x80]).is_err());
        // An unknown memo key.
        assert!(
            parse(&[0x80, 2, b'h', 7, b'.'])
                .unwrap_err()
                .contains("memo")
        );
    }
}
