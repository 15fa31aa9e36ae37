//! Feature cases for the generated fidelity test. Each case has a source definition, shadow
//! definitions written differently but structurally equal, and mutated shadow definitions.
//!
//! Placeholders: `{t}` the quoted table name, `{n}` the bare table name (for constraint names),
//! `{p}` the quoted parent the table's foreign keys should reference (the parent's shadow for a
//! shadow), `{ps}` the quoted source parent.

pub struct Case {
    pub source: &'static str,
    pub equivalents: &'static [&'static str],
    pub mutations: &'static [&'static str],
}

pub const PARENT: &str = "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, code varchar(10) DEFAULT NULL, UNIQUE KEY uc (code))";

pub const CASES: &[Case] = &[
    // Integers: display widths, unsigned, zerofill, quoted and unquoted defaults.
    Case {
        source: "CREATE TABLE {t} (id int unsigned NOT NULL AUTO_INCREMENT, a tinyint(4) DEFAULT '1', b smallint unsigned zerofill DEFAULT 7, c bigint NOT NULL DEFAULT -5, d mediumint(6) DEFAULT NULL, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id)) ENGINE=InnoDB AUTO_INCREMENT=100",
        equivalents: &[
            "CREATE TABLE {t} (id int(10) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, a tinyint DEFAULT 1, b smallint(5) unsigned zerofill DEFAULT '7', c bigint(20) NOT NULL DEFAULT '-5', d mediumint(6), e boolean NOT NULL DEFAULT false) AUTO_INCREMENT=7",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int unsigned NOT NULL AUTO_INCREMENT, a tinyint(4) DEFAULT '1', b smallint unsigned zerofill DEFAULT 7, c bigint NOT NULL DEFAULT -5, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id))",
            "CREATE TABLE {t} (id int unsigned NOT NULL AUTO_INCREMENT, a tinyint(4) DEFAULT '1', x int, b smallint unsigned zerofill DEFAULT 7, c bigint NOT NULL DEFAULT -5, d mediumint(6) DEFAULT NULL, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id))",
            "CREATE TABLE {t} (id int unsigned NOT NULL AUTO_INCREMENT, a int DEFAULT '1', b smallint unsigned zerofill DEFAULT 7, c bigint NOT NULL DEFAULT -5, d mediumint(6) DEFAULT NULL, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id))",
            "CREATE TABLE {t} (id int unsigned NOT NULL AUTO_INCREMENT, b smallint unsigned zerofill DEFAULT 7, a tinyint(4) DEFAULT '1', c bigint NOT NULL DEFAULT -5, d mediumint(6) DEFAULT NULL, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id))",
            "CREATE TABLE {t} (id int unsigned NOT NULL AUTO_INCREMENT, a tinyint(4) DEFAULT '1', b smallint unsigned zerofill DEFAULT 7, c bigint NOT NULL DEFAULT 3, d mediumint(6) DEFAULT NULL, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id))",
            "CREATE TABLE {t} (id int unsigned NOT NULL AUTO_INCREMENT, a tinyint(4) DEFAULT '1', b smallint unsigned zerofill DEFAULT 7, c bigint NULL DEFAULT -5, d mediumint(6) DEFAULT NULL, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id))",
            "CREATE TABLE {t} (id int unsigned NOT NULL AUTO_INCREMENT, a tinyint(4) DEFAULT '1', b smallint unsigned DEFAULT 7, c bigint NOT NULL DEFAULT -5, d mediumint(8) DEFAULT NULL, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id))",
            "CREATE TABLE {t} (id int unsigned NOT NULL, a tinyint(4) DEFAULT '1', b smallint unsigned zerofill DEFAULT 7, c bigint NOT NULL DEFAULT -5, d mediumint(6) DEFAULT NULL, e tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id))",
        ],
    },
    // Strings: charsets, collations (uca1400), comments with quotes, enum/set.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL, s varchar(50) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL DEFAULT 'it''s' COMMENT 'the \\'s\\' col', u varchar(20) COLLATE utf8mb4_uca1400_ai_ci DEFAULT NULL, e enum('a','b','c''d') NOT NULL DEFAULT 'a', st set('x','y') DEFAULT 'x,y', tx text, ch char(3) DEFAULT '', PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
        equivalents: &[
            "CREATE TABLE {t} (id int PRIMARY KEY, s varchar(50) CHARSET latin1 COLLATE latin1_bin NOT NULL DEFAULT \"it's\" COMMENT 'the \\'s\\' col', u varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_ai_ci, e enum('a','b','c''d') NOT NULL DEFAULT 'a', st set('x','y') DEFAULT 'x,y', tx text COLLATE utf8mb4_unicode_ci, ch char(3) DEFAULT '') CHARSET utf8mb4 COLLATE utf8mb4_unicode_ci",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL, s varchar(50) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL DEFAULT 'it''s' COMMENT 'the \\'s\\' col', u varchar(20) COLLATE utf8mb4_uca1400_as_cs DEFAULT NULL, e enum('a','b','c''d') NOT NULL DEFAULT 'a', st set('x','y') DEFAULT 'x,y', tx text, ch char(3) DEFAULT '', PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
            "CREATE TABLE {t} (id int NOT NULL, s varchar(50) NOT NULL DEFAULT 'it''s' COMMENT 'the \\'s\\' col', u varchar(20) COLLATE utf8mb4_uca1400_ai_ci DEFAULT NULL, e enum('a','b','c''d') NOT NULL DEFAULT 'a', st set('x','y') DEFAULT 'x,y', tx text, ch char(3) DEFAULT '', PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
            "CREATE TABLE {t} (id int NOT NULL, s varchar(50) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL DEFAULT 'it''s' COMMENT 'other', u varchar(20) COLLATE utf8mb4_uca1400_ai_ci DEFAULT NULL, e enum('a','b') NOT NULL DEFAULT 'a', st set('x','y') DEFAULT 'x,y', tx text, ch char(3) DEFAULT '', PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
            "CREATE TABLE {t} (id int NOT NULL, s varchar(50) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL DEFAULT 'it''s' COMMENT 'the \\'s\\' col', u varchar(20) COLLATE utf8mb4_uca1400_ai_ci DEFAULT NULL, e enum('a','b','c''d') NOT NULL DEFAULT 'a', st set('x','y') DEFAULT 'x,y', tx text, ch char(3) DEFAULT '', PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
            "CREATE TABLE {t} (id int NOT NULL, s varchar(40) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL DEFAULT 'it''s' COMMENT 'the \\'s\\' col', u varchar(20) COLLATE utf8mb4_uca1400_ai_ci DEFAULT NULL, e enum('a','b','c''d') NOT NULL DEFAULT 'a', st set('x','y') DEFAULT 'x,y', tx mediumtext, ch char(3) DEFAULT '', PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
        ],
    },
    // Temporal defaults and ON UPDATE.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, c timestamp(3) NOT NULL DEFAULT current_timestamp(3) ON UPDATE current_timestamp(3), d datetime DEFAULT current_timestamp(), e date DEFAULT '2020-01-01', f time(2) DEFAULT NULL, g year DEFAULT 2024, h datetime(6) DEFAULT NULL ON UPDATE current_timestamp(6))",
        equivalents: &[
            "CREATE TABLE {t} (id int PRIMARY KEY, c timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), d datetime DEFAULT NOW(), e date DEFAULT 20200101, f time(2), g year(4) DEFAULT '2024', h datetime(6) NULL ON UPDATE now(6))",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, c timestamp(3) NOT NULL DEFAULT current_timestamp(3), d datetime DEFAULT NULL, e date DEFAULT '2021-01-01', f time(3) DEFAULT NULL, g year DEFAULT 2024)",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, c timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(), d datetime DEFAULT current_timestamp(), e date DEFAULT '2020-01-01', f time(2) DEFAULT NULL, g year DEFAULT 2024, h datetime(6) DEFAULT NULL ON UPDATE current_timestamp(6))",
        ],
    },
    // Generated columns, invisible columns.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, a int DEFAULT NULL, b int AS (a * 2) VIRTUAL, c int AS (a + 1) STORED, d varchar(10) AS (concat('x', a)) VIRTUAL INVISIBLE, e int DEFAULT 3 INVISIBLE, KEY kb (b))",
        equivalents: &[
            "CREATE TABLE {t} (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a*2), c int GENERATED ALWAYS AS (a+1) PERSISTENT, d varchar(10) AS (concat('x',a)) INVISIBLE, e int INVISIBLE DEFAULT '3', INDEX kb (b))",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, a int DEFAULT NULL, b int AS (a * 2) STORED, c int AS (a + 1) STORED, d varchar(10) AS (concat('x', a)) VIRTUAL INVISIBLE, e int DEFAULT 3 INVISIBLE, KEY kb (b))",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, a int DEFAULT NULL, b int AS (a * 2) VIRTUAL, c int AS (a + 1) VIRTUAL, d varchar(10) AS (concat('x', a)) VIRTUAL INVISIBLE, e int DEFAULT 3 INVISIBLE, KEY kb (b))",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, a int DEFAULT NULL, b int AS (a * 3) VIRTUAL, c int AS (a + 1) STORED, d varchar(10) AS (concat('x', a)) VIRTUAL, e int DEFAULT 3, KEY kb (b))",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, a int DEFAULT NULL, b int DEFAULT NULL, c int AS (a + 1) STORED, d varchar(10) AS (concat('x', a)) VIRTUAL INVISIBLE, e int DEFAULT 3 INVISIBLE, KEY kb (b))",
        ],
    },
    // MariaDB's JSON alias, column and table CHECK constraints.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, j json, k json NOT NULL, n int DEFAULT 0 CHECK (n >= 0), CONSTRAINT chk_pos CHECK (id > 0), CHECK (n < 1000))",
        equivalents: &[
            "CREATE TABLE {t} (id int PRIMARY KEY, j longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin CHECK (json_valid(j)), k json NOT NULL, n int DEFAULT '0' CHECK (n >= 0), CONSTRAINT other_name CHECK (id > 0), CONSTRAINT x2 CHECK (n < 1000))",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, j json, k json NOT NULL, n int DEFAULT 0 CHECK (n >= 0), CHECK (n < 1000))",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, j json, k json NOT NULL, n int DEFAULT 0 CHECK (n >= 0), CONSTRAINT chk_pos CHECK (id > 1), CHECK (n < 1000))",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, j longtext, k json NOT NULL, n int DEFAULT 0 CHECK (n > 0), CONSTRAINT chk_pos CHECK (id > 0), CHECK (n < 1000), CHECK (n <> 5))",
        ],
    },
    // Indexes of every kind; listing order is not structure.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL, a varchar(100) NOT NULL, b int NOT NULL, c int DEFAULT NULL, d text, PRIMARY KEY (id), UNIQUE KEY ua (a(20), b DESC) COMMENT 'uniq', KEY kb (b) USING BTREE, KEY kc (c, b) IGNORED, KEY kh (c) USING HASH, FULLTEXT KEY fd (d)) ENGINE=InnoDB",
        equivalents: &[
            "CREATE TABLE {t} (id int NOT NULL, a varchar(100) NOT NULL, b int NOT NULL, c int, d text, FULLTEXT fd (d), KEY kh (c) USING HASH, KEY kc (c,b) IGNORED, INDEX kb USING BTREE (b), UNIQUE ua (a(20), b DESC) COMMENT 'uniq', PRIMARY KEY (id))",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL, a varchar(100) NOT NULL, b int NOT NULL, c int DEFAULT NULL, d text, PRIMARY KEY (id), UNIQUE KEY ua (a(20), b DESC) COMMENT 'uniq', KEY kb (b), KEY kc (c, b), KEY kh (c) USING HASH, FULLTEXT KEY fd (d))",
            "CREATE TABLE {t} (id int NOT NULL, a varchar(100) NOT NULL, b int NOT NULL, c int DEFAULT NULL, d text, PRIMARY KEY (id), UNIQUE KEY ua (a(30), b) COMMENT 'other', KEY kb (b) USING BTREE, KEY kc (c, b) IGNORED, FULLTEXT KEY fd (d))",
            "CREATE TABLE {t} (id int NOT NULL, a varchar(100) NOT NULL, b int NOT NULL, c int DEFAULT NULL, d text, PRIMARY KEY (id, b), UNIQUE KEY ua (a(20), b DESC) COMMENT 'uniq', KEY kb (b) USING BTREE, KEY kc (c, b) IGNORED, KEY kh (c) USING HASH, KEY kx (a))",
            "CREATE TABLE {t} (id int NOT NULL, a varchar(100) NOT NULL, b int NOT NULL, c int DEFAULT NULL, d text, UNIQUE KEY ua (a(20), b DESC) COMMENT 'uniq', KEY kb (c) USING BTREE, KEY kc (c, b) IGNORED, KEY kh (c) USING HASH, FULLTEXT KEY fd (d))",
        ],
    },
    // Spatial.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, g point NOT NULL, h geometry DEFAULT NULL, SPATIAL KEY sg (g))",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, g point NOT NULL, h geometry DEFAULT NULL)",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, g polygon NOT NULL, SPATIAL KEY sg (g))",
        ],
    },
    // Foreign keys to a parent whose shadow exists: compared by definition (rules as the server
    // prints them: RESTRICT as the default, NO ACTION explicitly), not by name.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, pid int DEFAULT NULL, pcode varchar(10) DEFAULT NULL, KEY kp (pid), KEY kc (pcode), FOREIGN KEY (pid) REFERENCES {p} (id) ON DELETE CASCADE, FOREIGN KEY (pcode) REFERENCES {p} (code) ON UPDATE SET NULL)",
        equivalents: &[
            "CREATE TABLE {t} (id int PRIMARY KEY, pid int, pcode varchar(10), KEY kp (pid), KEY kc (pcode), CONSTRAINT {n}_f1 FOREIGN KEY (pid) REFERENCES {p}(id) ON DELETE CASCADE ON UPDATE RESTRICT, CONSTRAINT {n}_f2 FOREIGN KEY (pcode) REFERENCES {p}(code) ON DELETE RESTRICT ON UPDATE SET NULL)",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, pid int DEFAULT NULL, pcode varchar(10) DEFAULT NULL, KEY kp (pid), KEY kc (pcode), FOREIGN KEY (pid) REFERENCES {p} (id) ON DELETE SET NULL, FOREIGN KEY (pcode) REFERENCES {p} (code) ON UPDATE SET NULL)",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, pid int DEFAULT NULL, pcode varchar(10) DEFAULT NULL, KEY kp (pid), KEY kc (pcode), FOREIGN KEY (pcode) REFERENCES {p} (code) ON UPDATE SET NULL)",
            // The server prints an explicit NO ACTION: it is not the default.
            "CREATE TABLE {t} (id int PRIMARY KEY, pid int, pcode varchar(10), KEY kp (pid), KEY kc (pcode), FOREIGN KEY (pid) REFERENCES {p}(id) ON DELETE CASCADE, FOREIGN KEY (pcode) REFERENCES {p}(code) ON DELETE NO ACTION ON UPDATE SET NULL)",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, pid int DEFAULT NULL, pcode varchar(10) DEFAULT NULL, KEY kp (pid), KEY kc (pcode), FOREIGN KEY (pid) REFERENCES {ps} (id) ON DELETE CASCADE, FOREIGN KEY (pcode) REFERENCES {p} (code) ON UPDATE SET NULL)",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, pid bigint DEFAULT NULL, pcode varchar(10) DEFAULT NULL, KEY kp (pid), KEY kc (pcode), FOREIGN KEY (pcode) REFERENCES {p} (code) ON UPDATE SET NULL, FOREIGN KEY (id) REFERENCES {p} (id))",
        ],
    },
    // Self-referencing foreign key.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, parent int DEFAULT NULL, KEY kp (parent), FOREIGN KEY (parent) REFERENCES {t} (id))",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, parent int DEFAULT NULL, KEY kp (parent))",
        ],
    },
    // RANGE partitioning: bounds are structure.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL, y int NOT NULL, PRIMARY KEY (id, y)) PARTITION BY RANGE (y) (PARTITION p0 VALUES LESS THAN (2000), PARTITION p1 VALUES LESS THAN (2010), PARTITION pmax VALUES LESS THAN MAXVALUE)",
        equivalents: &[
            "CREATE TABLE {t} (id int NOT NULL, y int NOT NULL, PRIMARY KEY (id, y)) ENGINE=InnoDB PARTITION BY RANGE (y) (PARTITION p0 VALUES LESS THAN (2000) ENGINE=InnoDB, PARTITION p1 VALUES LESS THAN (2010) ENGINE InnoDB, PARTITION pmax VALUES LESS THAN MAXVALUE)",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL, y int NOT NULL, PRIMARY KEY (id, y)) PARTITION BY RANGE (y) (PARTITION p0 VALUES LESS THAN (2000), PARTITION p1 VALUES LESS THAN (2015), PARTITION pmax VALUES LESS THAN MAXVALUE)",
            "CREATE TABLE {t} (id int NOT NULL, y int NOT NULL, PRIMARY KEY (id, y)) PARTITION BY RANGE (y) (PARTITION p0 VALUES LESS THAN (2000), PARTITION pmax VALUES LESS THAN MAXVALUE)",
            "CREATE TABLE {t} (id int NOT NULL, y int NOT NULL, PRIMARY KEY (id, y))",
            "CREATE TABLE {t} (id int NOT NULL, y int NOT NULL, PRIMARY KEY (id, y)) PARTITION BY HASH (y) PARTITIONS 3",
            "CREATE TABLE {t} (id int NOT NULL, y int NOT NULL, PRIMARY KEY (id, y)) PARTITION BY RANGE (y) SUBPARTITION BY HASH (id) SUBPARTITIONS 2 (PARTITION p0 VALUES LESS THAN (2000), PARTITION p1 VALUES LESS THAN (2010), PARTITION pmax VALUES LESS THAN MAXVALUE)",
        ],
    },
    // LIST COLUMNS.
    Case {
        source: "CREATE TABLE {t} (a int NOT NULL, b varchar(5) NOT NULL, c date NOT NULL) PARTITION BY LIST COLUMNS (a, b) (PARTITION p0 VALUES IN ((1,'a'),(2,'b')), PARTITION p1 VALUES IN ((3,'c')))",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (a int NOT NULL, b varchar(5) NOT NULL, c date NOT NULL) PARTITION BY LIST COLUMNS (a, b) (PARTITION p0 VALUES IN ((1,'a')), PARTITION p1 VALUES IN ((3,'c')))",
            "CREATE TABLE {t} (a int NOT NULL, b varchar(5) NOT NULL, c date NOT NULL) PARTITION BY LIST COLUMNS (a, b) (PARTITION p0 VALUES IN ((1,'a'),(2,'b')), PARTITION p1 VALUES IN ((3,'c')), PARTITION p2 VALUES IN ((4,'d')))",
        ],
    },
    // LIST with NULL.
    Case {
        source: "CREATE TABLE {t} (a int, c date NOT NULL) PARTITION BY LIST (a) (PARTITION p0 VALUES IN (1,2,3), PARTITION p1 VALUES IN (4,5), PARTITION pn VALUES IN (NULL))",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (a int, c date NOT NULL) PARTITION BY LIST (a) (PARTITION p0 VALUES IN (1,2,3), PARTITION p1 VALUES IN (4,5,6), PARTITION pn VALUES IN (NULL))",
        ],
    },
    // LINEAR KEY / HASH.
    Case {
        source: "CREATE TABLE {t} (a int NOT NULL, b int) PARTITION BY LINEAR KEY (a) PARTITIONS 4",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (a int NOT NULL, b int) PARTITION BY LINEAR KEY (a) PARTITIONS 3",
            "CREATE TABLE {t} (a int NOT NULL, b int) PARTITION BY HASH (a) PARTITIONS 4",
        ],
    },
    // RANGE COLUMNS with dates and MAXVALUE.
    Case {
        source: "CREATE TABLE {t} (a int NOT NULL, c date NOT NULL) PARTITION BY RANGE COLUMNS (c, a) (PARTITION p0 VALUES LESS THAN ('2020-01-01', 10), PARTITION p1 VALUES LESS THAN (MAXVALUE, MAXVALUE))",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (a int NOT NULL, c date NOT NULL) PARTITION BY RANGE COLUMNS (c, a) (PARTITION p0 VALUES LESS THAN ('2021-01-01', 10), PARTITION p1 VALUES LESS THAN (MAXVALUE, MAXVALUE))",
        ],
    },
    // Aria with its options.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v varchar(20)) ENGINE=Aria PAGE_CHECKSUM=1 TRANSACTIONAL=1",
        equivalents: &[
            "CREATE TABLE {t} (id int PRIMARY KEY, v varchar(20) DEFAULT NULL) ENGINE=aria PAGE_CHECKSUM 1 TRANSACTIONAL 1",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v varchar(20)) ENGINE=MyISAM",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v varchar(20)) ENGINE=InnoDB",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v varchar(20)) ENGINE=Aria PAGE_CHECKSUM=1 TRANSACTIONAL=0",
        ],
    },
    // MyISAM with FULLTEXT and its options.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, body text, FULLTEXT KEY fb (body)) ENGINE=MyISAM MAX_ROWS=1000 PACK_KEYS=1 CHECKSUM=1 DELAY_KEY_WRITE=1",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, body text, FULLTEXT KEY fb (body)) ENGINE=MyISAM PACK_KEYS=0",
            "CREATE TABLE {t} (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, body text) ENGINE=Aria",
        ],
    },
    // InnoDB table options.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v varchar(20)) ENGINE=InnoDB ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8 STATS_PERSISTENT=1 STATS_AUTO_RECALC=0 COMMENT='options table'",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v varchar(20)) ENGINE=InnoDB ROW_FORMAT=DYNAMIC",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v varchar(20)) ENGINE=InnoDB ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8 STATS_PERSISTENT=1 STATS_AUTO_RECALC=0 COMMENT='other'",
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v varchar(20)) DEFAULT CHARSET=latin1 ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8 STATS_PERSISTENT=1 STATS_AUTO_RECALC=0 COMMENT='options table'",
        ],
    },
    // No primary key.
    Case {
        source: "CREATE TABLE {t} (a int NOT NULL, b int, KEY ka (a))",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (a int NOT NULL, b int, PRIMARY KEY (a), KEY ka (a))",
            "CREATE TABLE {t} (a int NOT NULL, b int, UNIQUE KEY ka (a))",
        ],
    },
    // Binary, bit and numeric defaults.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, b binary(4) DEFAULT 'ab', vb varbinary(10) DEFAULT 0x41, bt bit(8) DEFAULT b'1010', bl blob, d decimal(12,4) NOT NULL DEFAULT 1.5000, f double DEFAULT 1.5, fl float(7,3) DEFAULT NULL)",
        equivalents: &[
            "CREATE TABLE {t} (id int PRIMARY KEY, b binary(4) DEFAULT 'ab', vb varbinary(10) DEFAULT 'A', bt bit(8) DEFAULT 10, bl blob, d decimal(12,4) NOT NULL DEFAULT '1.5', f double DEFAULT '1.5', fl float(7,3))",
        ],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, b binary(4) DEFAULT 'ab', vb varbinary(20) DEFAULT 0x41, bt bit(8) DEFAULT b'1', bl blob, d decimal(10,4) NOT NULL DEFAULT 1.5000, f double DEFAULT 1.5, fl float(7,3) DEFAULT NULL)",
        ],
    },
    // MEMORY engine, HASH vs BTREE.
    Case {
        source: "CREATE TABLE {t} (id int NOT NULL, k varchar(10) NOT NULL, PRIMARY KEY (id), KEY hk (k) USING HASH, KEY bk (k, id) USING BTREE) ENGINE=MEMORY",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (id int NOT NULL, k varchar(10) NOT NULL, PRIMARY KEY (id), KEY hk (k) USING BTREE, KEY bk (k, id) USING BTREE) ENGINE=MEMORY",
            "CREATE TABLE {t} (id int NOT NULL, k varchar(10) NOT NULL, PRIMARY KEY (id), KEY hk (k) USING HASH, KEY bk (k, id) USING BTREE) ENGINE=InnoDB",
        ],
    },
    // MariaDB data types with expression defaults.
    Case {
        source: "CREATE TABLE {t} (id uuid NOT NULL DEFAULT uuid(), ip inet6 DEFAULT NULL, ip4 inet4 DEFAULT '127.0.0.1', n int DEFAULT (1 + 1), dt date DEFAULT curdate(), PRIMARY KEY (id))",
        equivalents: &[
            "CREATE TABLE {t} (id uuid NOT NULL DEFAULT (uuid()) PRIMARY KEY, ip inet6, ip4 inet4 DEFAULT '127.0.0.1', n int DEFAULT (1+1), dt date DEFAULT (curdate()))",
        ],
        mutations: &[
            "CREATE TABLE {t} (id uuid NOT NULL DEFAULT uuid(), ip4 inet4 DEFAULT '10.0.0.1', n int DEFAULT (2 + 1), dt date DEFAULT NULL, PRIMARY KEY (id))",
        ],
    },
    // Identifiers that need quoting.
    Case {
        source: "CREATE TABLE {t} (`we``ird col` int NOT NULL, `ü x` varchar(3) DEFAULT 'ü', `select` int DEFAULT NULL, PRIMARY KEY (`we``ird col`), KEY `i``x` (`select`))",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (`select` int DEFAULT NULL, `we``ird col` int NOT NULL, `ü x` varchar(3) DEFAULT 'y', PRIMARY KEY (`we``ird col`), KEY `i``x` (`select`))",
        ],
    },
    // Column order only.
    Case {
        source: "CREATE TABLE {t} (a int, b int, c int, d int, e int, f int)",
        equivalents: &[],
        mutations: &[
            "CREATE TABLE {t} (f int, e int, d int, c int, b int, a int)",
            "CREATE TABLE {t} (b int, c int, d int, e int, f int, a int)",
            "CREATE TABLE {t} (a int, c int, b int, x int, d int, f int, e int)",
            "CREATE TABLE {t} (a int, b int)",
        ],
    },
];
