//! A seeded generator of source tables and of shadows derived from them: missing, identical,
//! or mutated by one to three random edits. Everything it writes is valid MariaDB 10.11 DDL.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shadowsync_schema::render::{quote_identifier, quote_string};

/// Column types, each with the defaults it accepts and whether it can be indexed whole.
const TYPES: &[(&str, &[&str], bool)] = &[
    ("int", &["0", "1", "-5"], true),
    ("int unsigned", &["0", "7"], true),
    ("bigint", &["0", "42"], true),
    ("smallint", &["3"], true),
    ("tinyint(1)", &["0", "1"], true),
    ("decimal(10,2)", &["1.50", "0.00"], true),
    ("decimal(12,4)", &["2.0000"], true),
    ("varchar(20)", &["'x'", "''"], true),
    ("varchar(64)", &["'long'"], true),
    ("varchar(32) CHARACTER SET latin1", &["'l'"], true),
    ("char(4)", &["'abcd'"], true),
    ("text", &[], false),
    ("date", &["'2020-01-01'"], true),
    (
        "datetime",
        &["current_timestamp()", "'2021-02-03 04:05:06'"],
        true,
    ),
    ("datetime(3)", &["current_timestamp(3)"], true),
    ("double", &["1.5"], true),
    ("enum('a','b','c')", &["'a'", "'c'"], true),
    ("json", &[], false),
    ("varbinary(16)", &["'ab'"], true),
];

/// Referential rules as written (`None`: not written).
const RULES: &[Option<&str>] = &[
    None,
    Some("NO ACTION"),
    Some("RESTRICT"),
    Some("CASCADE"),
    Some("SET NULL"),
];

#[derive(Debug, Clone)]
pub struct Col {
    pub name: String,
    pub ty: usize,
    pub nullable: bool,
    pub default: Option<String>,
    pub comment: Option<String>,
    /// Foreign-key columns keep type `int`, nullable (`SET NULL` needs it).
    pub fk: bool,
}

#[derive(Debug, Clone)]
pub struct Fk {
    /// `None`: unnamed (the server names it `<table>_ibfk_n`).
    pub name: Option<String>,
    pub column: String,
    /// Index of the parent table.
    pub parent: usize,
    pub on_delete: Option<&'static str>,
    pub on_update: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub cols: Vec<Col>,
    /// (name, unique, columns).
    pub indexes: Vec<(String, bool, Vec<String>)>,
    pub fks: Vec<Fk>,
    /// (name, expression); expressions only use `id`, which is never dropped.
    pub checks: Vec<(Option<String>, String)>,
    /// RANGE (id) upper bounds; the last partition is MAXVALUE when `maxvalue`.
    pub partitions: Option<(Vec<i64>, bool)>,
    pub comment: Option<String>,
}

/// The generator of one seed.
pub struct Generator {
    rng: StdRng,
    pub parents: usize,
    names: u32,
}

impl Generator {
    pub fn new(seed: u64, parents: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            parents,
            names: 0,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn column(&mut self, name: String) -> Col {
        let ty = self.rng.random_range(0..TYPES.len());
        let nullable = self.chance(0.6);
        let defaults = TYPES[ty].1;
        let default =
            (!defaults.is_empty() && self.chance(0.5)).then(|| self.pick(defaults).to_owned());
        let comment = self
            .chance(0.15)
            .then(|| format!("c'{}", self.rng.random_range(0..9)));
        Col {
            name,
            ty,
            nullable,
            default,
            comment,
            fk: false,
        }
    }

    /// A new source table.
    pub fn table(&mut self) -> Spec {
        let mut cols = Vec::new();
        let count = self.rng.random_range(2..7);
        for i in 0..count {
            let name = self.column(format!("c{i}"));
            cols.push(name);
        }
        let partitioned = self.chance(0.1);
        let mut spec = Spec {
            cols,
            indexes: Vec::new(),
            fks: Vec::new(),
            checks: Vec::new(),
            partitions: partitioned.then(|| (vec![100, 1000, 5000], self.chance(0.5))),
            comment: self.chance(0.2).then(|| "table comment".to_owned()),
        };
        let indexable: Vec<String> = spec
            .cols
            .iter()
            .filter(|c| TYPES[c.ty].2)
            .map(|c| c.name.clone())
            .collect();
        for k in 0..self.rng.random_range(0..3) {
            if indexable.is_empty() {
                break;
            }
            let first = self.pick(&indexable.iter().collect::<Vec<_>>()).clone();
            let mut columns = vec![first];
            if self.chance(0.3) {
                columns.push("id".into());
            }
            // A partitioned table's unique keys must hold the partitioning column.
            let unique = self.chance(0.2) && !partitioned;
            spec.indexes.push((format!("k{k}"), unique, columns));
        }
        if !partitioned && self.parents > 0 {
            for k in 0..self.rng.random_range(0..3) {
                let column = format!("p{k}");
                spec.cols.push(Col {
                    name: column.clone(),
                    ty: 0,
                    nullable: true,
                    default: None,
                    comment: None,
                    fk: true,
                });
                // Often without a declared index: InnoDB then creates one itself.
                if self.chance(0.5) {
                    spec.indexes
                        .push((format!("i_{column}"), false, vec![column.clone()]));
                }
                // Foreign-key names are unique per database.
                self.names += 1;
                let name = self.chance(0.5).then(|| format!("fk{}", self.names));
                let parent = self.rng.random_range(0..self.parents);
                let (on_delete, on_update) = (self.pick(RULES), self.pick(RULES));
                spec.fks.push(Fk {
                    name,
                    column,
                    parent,
                    on_delete,
                    on_update,
                });
            }
        }
        for k in 0..self.rng.random_range(0..3) {
            let expression = self.pick(&["`id` > 0", "`id` < 1000000", "`id` <> 13"]);
            // Sometimes unnamed, sometimes two with one expression.
            let name = self.chance(0.6).then(|| format!("chk{k}"));
            spec.checks.push((name, expression.to_owned()));
        }
        spec
    }

    /// The shadow of `source` after one to three random edits.
    pub fn mutate(&mut self, source: &Spec) -> Spec {
        let mut spec = source.clone();
        for _ in 0..self.rng.random_range(1..4) {
            self.edit(&mut spec);
        }
        spec
    }

    fn plain_column(&mut self, spec: &Spec) -> Option<usize> {
        let plain: Vec<usize> = (0..spec.cols.len()).filter(|&i| !spec.cols[i].fk).collect();
        (!plain.is_empty()).then(|| self.pick(&plain))
    }

    fn edit(&mut self, spec: &mut Spec) {
        match self.rng.random_range(0..14) {
            0 => {
                if let Some(i) = self.plain_column(spec) {
                    let name = spec.cols.remove(i).name;
                    spec.indexes
                        .retain(|(_, _, columns)| !columns.contains(&name));
                }
            }
            1 => {
                let at = self.rng.random_range(0..=spec.cols.len());
                let suffix = self.rng.random_range(0..100);
                let column = self.column(format!("x{suffix}"));
                if !spec
                    .cols
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&column.name))
                {
                    spec.cols.insert(at, column);
                }
            }
            2 => {
                if let Some(i) = self.plain_column(spec) {
                    let ty = self.rng.random_range(0..TYPES.len());
                    let name = spec.cols[i].name.clone();
                    spec.cols[i].ty = ty;
                    spec.cols[i].default = None;
                    if !TYPES[ty].2 {
                        spec.indexes
                            .retain(|(_, _, columns)| !columns.contains(&name));
                    }
                }
            }
            3 => {
                if let Some(i) = self.plain_column(spec) {
                    spec.cols[i].nullable = !spec.cols[i].nullable;
                }
            }
            4 => {
                if let Some(i) = self.plain_column(spec) {
                    let defaults = TYPES[spec.cols[i].ty].1;
                    spec.cols[i].default = match spec.cols[i].default {
                        Some(_) => None,
                        None if !defaults.is_empty() => Some(self.pick(defaults).to_owned()),
                        None => None,
                    };
                }
            }
            5 => {
                if let Some(i) = self.plain_column(spec) {
                    spec.cols[i].comment = Some("changed".into());
                }
            }
            6 => {
                if spec.cols.len() >= 2 {
                    let a = self.rng.random_range(0..spec.cols.len());
                    let b = self.rng.random_range(0..spec.cols.len());
                    spec.cols.swap(a, b);
                }
            }
            7 => {
                // A case-only difference in a column's name.
                let i = self.rng.random_range(0..spec.cols.len());
                let renamed = spec.cols[i].name.to_uppercase();
                let old = std::mem::replace(&mut spec.cols[i].name, renamed.clone());
                for (_, _, columns) in &mut spec.indexes {
                    for column in columns.iter_mut().filter(|c| **c == old) {
                        column.clone_from(&renamed);
                    }
                }
                for fk in spec.fks.iter_mut().filter(|fk| fk.column == old) {
                    fk.column.clone_from(&renamed);
                }
            }
            8 => {
                if !spec.fks.is_empty() {
                    let i = self.rng.random_range(0..spec.fks.len());
                    spec.fks[i].on_delete = self.pick(RULES);
                    spec.fks[i].on_update = self.pick(RULES);
                }
            }
            9 => {
                if !spec.fks.is_empty() {
                    let i = self.rng.random_range(0..spec.fks.len());
                    spec.fks.remove(i);
                }
            }
            10 => {
                if !spec.indexes.is_empty() && self.chance(0.5) {
                    // Not an index a foreign key needs (the server refuses that drop).
                    let fk_columns: Vec<String> =
                        spec.fks.iter().map(|fk| fk.column.to_lowercase()).collect();
                    let i = self.rng.random_range(0..spec.indexes.len());
                    if !fk_columns.contains(&spec.indexes[i].2[0].to_lowercase()) {
                        spec.indexes.remove(i);
                    }
                } else if let Some(i) = self.plain_column(spec)
                    && TYPES[spec.cols[i].ty].2
                {
                    let column = spec.cols[i].name.clone();
                    if !spec.indexes.iter().any(|(name, _, _)| name == "knew") {
                        spec.indexes.push(("knew".into(), false, vec![column]));
                    }
                }
            }
            11 => {
                if !spec.checks.is_empty() && self.chance(0.5) {
                    spec.checks.pop();
                } else {
                    spec.checks.push((None, "`id` > 0".into()));
                }
            }
            12 => {
                if let Some((bounds, maxvalue)) = &mut spec.partitions {
                    match self.rng.random_range(0..4) {
                        0 => bounds.push(bounds.last().copied().unwrap_or(0) + 1000),
                        1 if bounds.len() > 1 => {
                            bounds.remove(self.rng.random_range(0..bounds.len()));
                        }
                        2 if bounds.len() > 1 && bounds[1] - bounds[0] > 1 => {
                            bounds.insert(1, (bounds[0] + bounds[1]) / 2);
                        }
                        _ => *maxvalue = !*maxvalue,
                    }
                } else {
                    spec.comment = Some("other comment".into());
                }
            }
            _ => spec.comment = None,
        }
    }
}

/// `CREATE TABLE` for `spec` under `name`; foreign keys reference `parent(k)`, and named keys
/// and checks take `constraint(name)`.
///
/// With `declare_implicit`, a named foreign key without a declared index gets one named as the
/// source's implicit index (the key's source name), as a shadow written by the engine has; without
/// it InnoDB names that index after the shadow's key.
pub fn render(
    spec: &Spec,
    name: &str,
    parent: &dyn Fn(usize) -> String,
    constraint: &dyn Fn(&str) -> String,
    declare_implicit: bool,
) -> String {
    let mut lines = vec!["`id` int NOT NULL".to_owned()];
    for col in &spec.cols {
        let mut line = format!("{} {}", quote_identifier(&col.name), TYPES[col.ty].0);
        if !col.nullable {
            line.push_str(" NOT NULL");
        }
        if let Some(default) = &col.default {
            line.push_str(&format!(" DEFAULT {default}"));
        }
        if let Some(comment) = &col.comment {
            line.push_str(&format!(" COMMENT {}", quote_string(comment)));
        }
        lines.push(line);
    }
    lines.push("PRIMARY KEY (`id`)".into());
    for (index, unique, columns) in &spec.indexes {
        let columns: Vec<String> = columns.iter().map(|c| quote_identifier(c)).collect();
        lines.push(format!(
            "{}KEY {} ({})",
            if *unique { "UNIQUE " } else { "" },
            quote_identifier(index),
            columns.join(", ")
        ));
    }
    for fk in &spec.fks {
        let declared = spec
            .indexes
            .iter()
            .any(|(_, _, columns)| columns[0].eq_ignore_ascii_case(&fk.column));
        if let (Some(fk_name), false, true) = (&fk.name, declared, declare_implicit) {
            lines.push(format!(
                "KEY {} ({})",
                quote_identifier(fk_name),
                quote_identifier(&fk.column)
            ));
        }
    }
    for fk in &spec.fks {
        let mut line = match &fk.name {
            Some(fk_name) => format!("CONSTRAINT {} ", quote_identifier(&constraint(fk_name))),
            None => String::new(),
        };
        line.push_str(&format!(
            "FOREIGN KEY ({}) REFERENCES {} (`id`)",
            quote_identifier(&fk.column),
            quote_identifier(&parent(fk.parent))
        ));
        if let Some(rule) = fk.on_delete {
            line.push_str(&format!(" ON DELETE {rule}"));
        }
        if let Some(rule) = fk.on_update {
            line.push_str(&format!(" ON UPDATE {rule}"));
        }
        lines.push(line);
    }
    for (check_name, expression) in &spec.checks {
        let prefix = match check_name {
            Some(check_name) => {
                format!("CONSTRAINT {} ", quote_identifier(&constraint(check_name)))
            }
            None => String::new(),
        };
        lines.push(format!("{prefix}CHECK ({expression})"));
    }
    let mut sql = format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote_identifier(name),
        lines.join(",\n  ")
    );
    if let Some(comment) = &spec.comment {
        sql.push_str(&format!(" COMMENT={}", quote_string(comment)));
    }
    if let Some((bounds, maxvalue)) = &spec.partitions {
        let mut parts: Vec<String> = bounds
            .iter()
            .map(|bound| format!("PARTITION p{bound} VALUES LESS THAN ({bound})"))
            .collect();
        if *maxvalue {
            parts.push("PARTITION pmax VALUES LESS THAN MAXVALUE".into());
        }
        sql.push_str(&format!(
            "\nPARTITION BY RANGE (`id`) ({})",
            parts.join(", ")
        ));
    }
    sql
}
