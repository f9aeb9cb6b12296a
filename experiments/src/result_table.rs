//! The tables the studies print and save: one header, rows of already formatted cells, written
//! as aligned text for the terminal and as CSV for plotting and the docs.

/// A table of formatted cells.
#[derive(Debug, Clone, Default)]
pub struct ResultTable {
    header: Vec<String>,
    rows: Vec<(Vec<String>, Vec<String>)>,
}

impl ResultTable {
    /// A table with these column names (the first column is left-aligned text).
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row: `shown` cells for the terminal, `exact` cells (full precision) for the CSV.
    pub fn push(&mut self, shown: Vec<String>, exact: Vec<String>) {
        self.rows.push((shown, exact));
    }

    /// Appends the rows of `other` (same columns).
    pub fn append(&mut self, other: &ResultTable) {
        self.rows.extend(other.rows.iter().cloned());
    }

    /// Adds a column: one `(shown, exact)` cell per existing row.
    pub fn add_column(&mut self, name: &str, cells: Vec<(String, String)>) {
        self.header.push(name.to_string());
        for ((shown, exact), (s, e)) in self.rows.iter_mut().zip(cells) {
            shown.push(s);
            exact.push(e);
        }
    }

    /// Aligned text.
    pub fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|(r, _)| r.get(c).map_or(0, |s| s.chars().count()))
                    .chain(std::iter::once(self.header[c].chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (c, cell) in cells.iter().enumerate() {
                let pad = widths[c].saturating_sub(cell.chars().count());
                if c == 0 {
                    out += &format!("{cell}{}", " ".repeat(pad));
                } else {
                    out += &format!("  {}{cell}", " ".repeat(pad));
                }
            }
            out + "\n"
        };
        std::iter::once(line(&self.header))
            .chain(self.rows.iter().map(|(r, _)| line(r)))
            .collect()
    }

    /// CSV (commas in cells become semicolons).
    pub fn csv(&self) -> String {
        let line = |cells: &[String]| {
            cells
                .iter()
                .map(|c| c.replace(',', ";"))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        };
        std::iter::once(line(&self.header))
            .chain(self.rows.iter().map(|(_, r)| line(r)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_text_and_keeps_exact_values_in_csv() {
        let mut t = ResultTable::new(&["variant", "fid"]);
        t.push(
            vec!["a, b".into(), "1.23".into()],
            vec!["a, b".into(), "1.2345".into()],
        );
        assert_eq!(t.text(), "variant   fid\na, b     1.23\n");
        assert_eq!(t.csv(), "variant,fid\na; b,1.2345\n");
    }
}
