//! The built-in corpus: a synthetic English → "Synthian" language pair, generated from a seed.
//!
//! seqkd cannot ship real corpora (licenses), so the demo and the tests use this one. It is made so
//! that a model must really learn to translate, and so that sequence-level distillation has the
//! effect Kim & Rush describe:
//! - **Reordering.** Synthian is verb-final (SOV), adjectives follow their noun, prepositions are
//!   postpositions, time adverbs usually open the sentence, and a reported clause sits *inside* the
//!   main clause ("the woman says that the dog sees the cat" → "La femina ke lo kan lon gat videt dizet").
//! - **Agreement.** Nouns have three genders; determiners agree in gender, number and case
//!   (nominative, accusative, dative after a postposition), adjectives in gender and number, verbs
//!   in person and number with their subject (which may be several words away).
//! - **Genuine ambiguity.** About a quarter of the content words have two valid translations (a noun's
//!   synonym may have another gender, so the agreement changes with it), English "you" is singular or
//!   plural, "and" has two forms, and the time adverb may open the sentence or precede the verb.
//! - **Free word order.** The case-marked object may be scrambled before the subject (30% of
//!   clauses with an object), as in German or Russian: a choice that spans the whole clause, so a
//!   model that mixes the two orders drops or repeats a noun phrase.
//!
//! Each reference picks among these at random with fixed probabilities (70/30), as human
//!   references vary. A teacher's beam output picks the likely variant consistently: this is the
//!   multimodality that Seq-KD removes for the student (paper §3.2, §5).
//!
//! The language itself (lexicon, genders, synonyms) is fixed; the seed only chooses the sentences.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod english;

use english::{ADJECTIVES, INTRANSITIVE, NOUNS, PREPOSITIONS, PRONOUNS, REPORTING, TIMES, TRANSITIVE};

/// Synthian pronouns, by (person, plural); 3rd singular by English form.
fn target_pronoun(english: &str, person: u8, plural: bool) -> &'static str {
    match (english, person, plural) {
        ("he", ..) => "il",
        ("she", ..) => "ela",
        ("it", ..) => "ol",
        (_, 1, false) => "mi",
        (_, 2, false) => "tu",
        (_, 1, true) => "nos",
        (_, 2, true) => "vos",
        _ => "ili",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gender {
    Masculine,
    Feminine,
    Neuter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Nominative,
    Accusative,
    Dative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Det {
    Definite,
    Indefinite,
    Demonstrative,
}

/// Determiner forms: [det][case][m, f, n, plural].
const DETERMINERS: [[[&str; 4]; 3]; 3] = [
    [["lo", "la", "le", "li"], ["lon", "lan", "le", "lis"], ["lom", "lar", "lem", "lir"]],
    [["un", "una", "un", "kai"], ["unon", "unan", "un", "kais"], ["unom", "unar", "unem", "kair"]],
    [
        ["ves", "vesa", "vese", "vesi"],
        ["veson", "vesan", "vese", "vesis"],
        ["vesom", "vesar", "vesem", "vesir"],
    ],
];

/// A Synthian noun: a stem whose endings depend on its gender.
#[derive(Debug, Clone)]
struct TargetNoun {
    stem: String,
    gender: Gender,
}

impl TargetNoun {
    fn form(&self, plural: bool) -> String {
        let ending = match (self.gender, plural) {
            (Gender::Masculine, false) => "",
            (Gender::Masculine, true) => "en",
            (Gender::Feminine, false) => "a",
            (Gender::Feminine, true) => "as",
            (Gender::Neuter, false) => "o",
            (Gender::Neuter, true) => "u",
        };
        format!("{}{ending}", self.stem)
    }
}

/// One or two translations of a word, with the probability of the first.
#[derive(Debug, Clone)]
struct Choices<T> {
    options: Vec<T>,
    p_first: f64,
}

impl<T> Choices<T> {
    fn pick(&self, rng: &mut Option<&mut ChaCha8Rng>) -> &T {
        let first = match rng {
            Some(rng) if self.options.len() > 1 => rng.random_bool(self.p_first),
            _ => true, // the mode
        };
        &self.options[if first { 0 } else { 1 }]
    }
}

/// Synthian's lexicon, aligned index by index with the English lists above.
#[derive(Debug, Clone)]
struct Lexicon {
    nouns: Vec<Choices<TargetNoun>>,
    transitive: Vec<Choices<String>>,
    intransitive: Vec<Choices<String>>,
    reporting: Vec<Choices<String>>,
    adjectives: Vec<Choices<String>>,
    postpositions: Vec<Choices<String>>,
    times: [Vec<String>; 2],
}

/// The language is the same whatever the corpus seed: it comes from this fixed seed.
const LEXICON_SEED: u64 = 0x5EED_2016;
/// Share of content words with a second valid translation.
const SYNONYM_RATE: f64 = 0.25;
/// Probability of the first (most frequent) of two translations. Every choice is 70/30: at 60/40
/// the demo's teacher (1.18M parameters, 5 minutes) misjudged which variant is the likelier in
/// about one choice in ten, so its beam output was the mode for only 66% of the sentences and its
/// Seq-KD corpus was nearly as mixed as the references (docs/builtin-corpus.md, issue 18).
const P_FIRST_SYNONYM: f64 = 0.7;
/// Probability that a time adverb opens its clause (otherwise it precedes the verb).
const P_TIME_FIRST: f64 = 0.7;
/// Probability that a clause's object is scrambled before its subject.
const P_OBJECT_FIRST: f64 = 0.3;

impl Lexicon {
    fn new() -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(LEXICON_SEED);
        let mut used = HashSet::new();
        let mut stem = |rng: &mut ChaCha8Rng, syllables: usize| -> String {
            const ONSETS: &[&str] = &[
                "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr", "kl",
                "sh", "ch",
            ];
            const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou"];
            loop {
                let mut s = String::new();
                for _ in 0..syllables {
                    s.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
                    s.push_str(VOWELS[rng.random_range(0..VOWELS.len())]);
                }
                if rng.random_bool(0.5) {
                    s.push_str(["n", "r", "l", "s", "k"][rng.random_range(0..5)]);
                }
                // Keep stems distinct from each other and from the function words.
                if used.insert(s.clone())
                    && !["lo", "la", "le", "li", "un", "ke", "e", "ed"].contains(&s.as_str())
                {
                    return s;
                }
            }
        };
        let gender = |rng: &mut ChaCha8Rng| match rng.random_range(0..3) {
            0 => Gender::Masculine,
            1 => Gender::Feminine,
            _ => Gender::Neuter,
        };
        let choices = |rng: &mut ChaCha8Rng, make: &mut dyn FnMut(&mut ChaCha8Rng) -> String| {
            let n = if rng.random_bool(SYNONYM_RATE) { 2 } else { 1 };
            Choices { options: (0..n).map(|_| make(rng)).collect(), p_first: P_FIRST_SYNONYM }
        };
        let nouns = NOUNS
            .iter()
            .map(|_| {
                let n = if rng.random_bool(SYNONYM_RATE) { 2 } else { 1 };
                let options = (0..n)
                    .map(|_| TargetNoun { stem: stem(&mut rng, 2), gender: gender(&mut rng) })
                    .collect();
                Choices { options, p_first: P_FIRST_SYNONYM }
            })
            .collect();
        // Verb stems end in a vowel so the endings attach cleanly ("vide" + "t").
        let mut verb = |rng: &mut ChaCha8Rng| {
            let mut s = stem(rng, 2);
            if !s.ends_with(['a', 'e', 'i', 'o', 'u']) {
                s.push('e');
            }
            s
        };
        let transitive = TRANSITIVE.iter().map(|_| choices(&mut rng, &mut verb)).collect();
        let intransitive = INTRANSITIVE.iter().map(|_| choices(&mut rng, &mut verb)).collect();
        let reporting = REPORTING.iter().map(|_| choices(&mut rng, &mut verb)).collect();
        let mut adjective = |rng: &mut ChaCha8Rng| {
            let mut s = stem(rng, 2);
            s.truncate(s.trim_end_matches(['a', 'e', 'i', 'o', 'u']).len());
            s
        };
        let adjectives = ADJECTIVES.iter().map(|_| choices(&mut rng, &mut adjective)).collect();
        let postpositions = PREPOSITIONS.iter().map(|_| choices(&mut rng, &mut |r| stem(r, 1))).collect();
        let times = TIMES.map(|ts| {
            ts.iter().map(|t| t.split(' ').map(|_| stem(&mut rng, 2)).collect::<Vec<_>>().join(" ")).collect()
        });
        Self { nouns, transitive, intransitive, reporting, adjectives, postpositions, times }
    }
}

// ---- The sentence structure both languages are rendered from. ----

#[derive(Debug, Clone)]
struct NounPhrase {
    det: Det,
    noun: usize,
    plural: bool,
    adjectives: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Subject {
    Pronoun(usize),
    Noun(NounPhrase),
}

#[derive(Debug, Clone, Copy)]
enum Verb {
    Transitive(usize),
    Intransitive(usize),
}

#[derive(Debug, Clone)]
struct Clause {
    subject: Subject,
    verb: Verb,
    past: bool,
    object: Option<NounPhrase>,
    place: Option<(usize, NounPhrase)>,
    time: Option<usize>,
}

#[derive(Debug, Clone)]
enum Sentence {
    Simple(Clause),
    And(Clause, Clause),
    Reported { subject: Subject, verb: usize, past: bool, inner: Clause },
}

fn sample_np(rng: &mut ChaCha8Rng) -> NounPhrase {
    let det = match rng.random_range(0..10) {
        0..=5 => Det::Definite,
        6..=8 => Det::Indefinite,
        _ => Det::Demonstrative,
    };
    let n_adj = match rng.random_range(0..20) {
        0..=9 => 0,
        10..=16 => 1,
        _ => 2,
    };
    let mut adjectives: Vec<usize> = Vec::with_capacity(n_adj);
    while adjectives.len() < n_adj {
        let a = rng.random_range(0..ADJECTIVES.len());
        if !adjectives.contains(&a) {
            adjectives.push(a);
        }
    }
    NounPhrase { det, noun: rng.random_range(0..NOUNS.len()), plural: rng.random_bool(0.3), adjectives }
}

fn sample_subject(rng: &mut ChaCha8Rng) -> Subject {
    if rng.random_bool(0.3) {
        Subject::Pronoun(rng.random_range(0..PRONOUNS.len()))
    } else {
        Subject::Noun(sample_np(rng))
    }
}

fn sample_clause(rng: &mut ChaCha8Rng, past: bool) -> Clause {
    let verb = if rng.random_bool(0.7) {
        Verb::Transitive(rng.random_range(0..TRANSITIVE.len()))
    } else {
        Verb::Intransitive(rng.random_range(0..INTRANSITIVE.len()))
    };
    Clause {
        subject: sample_subject(rng),
        verb,
        past,
        object: matches!(verb, Verb::Transitive(_)).then(|| sample_np(rng)),
        place: rng.random_bool(0.4).then(|| (rng.random_range(0..PREPOSITIONS.len()), sample_np(rng))),
        time: rng.random_bool(0.35).then(|| rng.random_range(0..TIMES[past as usize].len())),
    }
}

fn sample_sentence(rng: &mut ChaCha8Rng) -> Sentence {
    let past = rng.random_bool(0.5);
    match rng.random_range(0..20) {
        0..=13 => Sentence::Simple(sample_clause(rng, past)),
        14..=16 => Sentence::And(sample_clause(rng, past), sample_clause(rng, past)),
        _ => Sentence::Reported {
            subject: sample_subject(rng),
            verb: rng.random_range(0..REPORTING.len()),
            past,
            inner: sample_clause(rng, past),
        },
    }
}

// ---- English rendering (deterministic). ----

fn english_np(np: &NounPhrase, out: &mut Vec<String>) {
    let (sg, pl) = NOUNS[np.noun];
    let next = np.adjectives.first().map(|&a| ADJECTIVES[a]).unwrap_or(sg);
    let det = match (np.det, np.plural) {
        (Det::Definite, _) => "the",
        (Det::Indefinite, true) => "some",
        (Det::Indefinite, false) if next.starts_with(['a', 'e', 'i', 'o', 'u']) => "an",
        (Det::Indefinite, false) => "a",
        (Det::Demonstrative, false) => "this",
        (Det::Demonstrative, true) => "these",
    };
    out.push(det.into());
    out.extend(np.adjectives.iter().map(|&a| ADJECTIVES[a].to_string()));
    out.push(if np.plural { pl } else { sg }.into());
}

/// Person (1..=3) and number of a subject.
fn agreement(subject: &Subject) -> (u8, bool) {
    match subject {
        Subject::Pronoun(p) => (PRONOUNS[*p].1, PRONOUNS[*p].2),
        Subject::Noun(np) => (3, np.plural),
    }
}

fn english_subject(subject: &Subject, out: &mut Vec<String>) {
    match subject {
        Subject::Pronoun(p) => out.push(PRONOUNS[*p].0.into()),
        Subject::Noun(np) => english_np(np, out),
    }
}

fn english_verb(forms: (&str, &str, &str), subject: &Subject, past: bool) -> String {
    let (person, plural) = agreement(subject);
    match (past, person, plural) {
        (true, ..) => forms.2,
        (false, 3, false) => forms.1,
        _ => forms.0,
    }
    .into()
}

fn english_clause(c: &Clause, out: &mut Vec<String>) {
    english_subject(&c.subject, out);
    let forms = match c.verb {
        Verb::Transitive(v) => TRANSITIVE[v],
        Verb::Intransitive(v) => INTRANSITIVE[v],
    };
    out.push(english_verb(forms, &c.subject, c.past));
    if let Some(obj) = &c.object {
        english_np(obj, out);
    }
    if let Some((prep, np)) = &c.place {
        out.push(PREPOSITIONS[*prep].into());
        english_np(np, out);
    }
    if let Some(t) = c.time {
        out.push(TIMES[c.past as usize][t].into());
    }
}

fn sentence_case(words: Vec<String>) -> String {
    let mut s = words.join(" ");
    if let Some(first) = s.chars().next() {
        let upper: String = first.to_uppercase().collect();
        s.replace_range(..first.len_utf8(), &upper);
    }
    s.push('.');
    s
}

fn english(s: &Sentence) -> String {
    let mut out = Vec::new();
    match s {
        Sentence::Simple(c) => english_clause(c, &mut out),
        Sentence::And(a, b) => {
            english_clause(a, &mut out);
            out.push("and".into());
            english_clause(b, &mut out);
        }
        Sentence::Reported { subject, verb, past, inner } => {
            english_subject(subject, &mut out);
            out.push(english_verb(REPORTING[*verb], subject, *past));
            out.push("that".into());
            english_clause(inner, &mut out);
        }
    }
    sentence_case(out)
}

// ---- Synthian rendering: `rng = None` gives the mode (every most-likely choice). ----

struct TargetRenderer<'a, 'r> {
    lex: &'a Lexicon,
    rng: Option<&'r mut ChaCha8Rng>,
}

impl TargetRenderer<'_, '_> {
    fn coin(&mut self, p: f64) -> bool {
        match &mut self.rng {
            Some(rng) => rng.random_bool(p),
            None => p >= 0.5,
        }
    }

    fn np(&mut self, np: &NounPhrase, case: Case, out: &mut Vec<String>) {
        let noun = self.lex.nouns[np.noun].pick(&mut self.rng).clone();
        let slot = if np.plural { 3 } else { noun.gender as usize };
        out.push(DETERMINERS[np.det as usize][case as usize][slot].into());
        out.push(noun.form(np.plural));
        for &a in &np.adjectives {
            let stem = self.lex.adjectives[a].pick(&mut self.rng);
            let ending = match (noun.gender, np.plural) {
                (_, true) => "i",
                (Gender::Masculine, false) => "o",
                (Gender::Feminine, false) => "a",
                (Gender::Neuter, false) => "e",
            };
            out.push(format!("{stem}{ending}"));
        }
    }

    /// Renders the subject and returns the (person, plural) the verb must agree with; "you" is
    /// singular or plural at random, since English does not say.
    fn subject(&mut self, subject: &Subject, out: &mut Vec<String>) -> (u8, bool) {
        match subject {
            Subject::Pronoun(p) => {
                let (english, person, mut plural) = PRONOUNS[*p];
                if person == 2 {
                    plural = !self.coin(P_FIRST_SYNONYM);
                }
                out.push(target_pronoun(english, person, plural).into());
                (person, plural)
            }
            Subject::Noun(np) => {
                self.np(np, Case::Nominative, out);
                (3, np.plural)
            }
        }
    }

    fn verb(stem: &str, past: bool, (person, plural): (u8, bool)) -> String {
        let tense = if past { "ta" } else { "" };
        let agreement = match (person, plural) {
            (1, false) => "m",
            (2, false) => "s",
            (3, false) => "t",
            (1, true) => "mos",
            (2, true) => "tis",
            _ => "nt",
        };
        format!("{stem}{tense}{agreement}")
    }

    /// Clause order: [time] subject [place] [object] [time] verb, or, the object scrambled to the
    /// front (the case-marked determiner still says it is the object), [time] object subject
    /// [place] [time] verb. The choice spans the whole clause: a model that starts with the object
    /// must remember to produce the subject after it, and not the object again.
    fn clause(&mut self, c: &Clause, out: &mut Vec<String>) {
        let time = c.time.map(|t| self.lex.times[c.past as usize][t].clone());
        let time_first = self.coin(P_TIME_FIRST);
        let object_first = c.object.is_some() && !self.coin(1.0 - P_OBJECT_FIRST);
        if let (Some(t), true) = (&time, time_first) {
            out.push(t.clone());
        }
        if let (Some(obj), true) = (&c.object, object_first) {
            self.np(obj, Case::Accusative, out);
        }
        let agree = self.subject(&c.subject, out);
        if let Some((post, np)) = &c.place {
            self.np(np, Case::Dative, out);
            out.push(self.lex.postpositions[*post].pick(&mut self.rng).clone());
        }
        if let (Some(obj), false) = (&c.object, object_first) {
            self.np(obj, Case::Accusative, out);
        }
        if let (Some(t), false) = (&time, time_first) {
            out.push(t.clone());
        }
        let stem = match c.verb {
            Verb::Transitive(v) => self.lex.transitive[v].pick(&mut self.rng),
            Verb::Intransitive(v) => self.lex.intransitive[v].pick(&mut self.rng),
        };
        out.push(Self::verb(stem, c.past, agree));
    }

    fn sentence(&mut self, s: &Sentence) -> String {
        let mut out = Vec::new();
        match s {
            Sentence::Simple(c) => self.clause(c, &mut out),
            Sentence::And(a, b) => {
                self.clause(a, &mut out);
                out.push(if self.coin(P_FIRST_SYNONYM) { "e" } else { "ed" }.into());
                self.clause(b, &mut out);
            }
            Sentence::Reported { subject, verb, past, inner } => {
                // The reported clause is embedded before the main verb: long-distance agreement.
                let agree = self.subject(subject, &mut out);
                out.push("ke".into());
                self.clause(inner, &mut out);
                let stem = self.lex.reporting[*verb].pick(&mut self.rng).clone();
                out.push(Self::verb(&stem, *past, agree));
            }
        }
        sentence_case(out)
    }
}

/// Sizes and seed of a generated corpus.
#[derive(Debug, Clone, Copy)]
pub struct SynthConfig {
    pub seed: u64,
    pub train: usize,
    pub valid: usize,
    pub test: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self { seed: 1, train: 40_000, valid: 1_000, test: 1_000 }
    }
}

/// A generated split: source lines, reference lines, and the mode translation of each source (the
/// reference with every most-likely choice), which tells how much of the references' variation is
/// ambiguity a model cannot predict.
#[derive(Debug, Clone, Default)]
pub struct SynthSplit {
    pub src: Vec<String>,
    pub tgt: Vec<String>,
    pub mode: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SynthCorpus {
    pub train: SynthSplit,
    pub valid: SynthSplit,
    pub test: SynthSplit,
}

/// Generates the corpus: deterministic in `cfg.seed`; valid and test sources never occur in train or in each other.
pub fn generate(cfg: &SynthConfig) -> SynthCorpus {
    let lex = Lexicon::new();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut seen = HashSet::new();
    let mut split = |n: usize, rng: &mut ChaCha8Rng, unique: bool| {
        let mut out = SynthSplit::default();
        while out.src.len() < n {
            let sentence = sample_sentence(rng);
            let src = english(&sentence);
            if !seen.insert(src.clone()) && unique {
                continue;
            }
            out.tgt.push(TargetRenderer { lex: &lex, rng: Some(&mut *rng) }.sentence(&sentence));
            out.mode.push(TargetRenderer { lex: &lex, rng: None }.sentence(&sentence));
            out.src.push(src);
        }
        out
    };
    // Training data may repeat a source (with another reference), as real corpora do.
    let train = split(cfg.train, &mut rng, false);
    let valid = split(cfg.valid, &mut rng, true);
    let test = split(cfg.test, &mut rng, true);
    SynthCorpus { train, valid, test }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthCorpus {
        generate(&SynthConfig { seed: 7, train: 2000, valid: 100, test: 100 })
    }

    #[test]
    fn generation_is_deterministic_in_the_seed() {
        let (a, b) = (small(), small());
        assert_eq!(a.train.src, b.train.src);
        assert_eq!(a.train.tgt, b.train.tgt);
        let c = generate(&SynthConfig { seed: 8, train: 2000, valid: 100, test: 100 });
        assert_ne!(a.train.src, c.train.src);
    }

    #[test]
    fn held_out_sources_are_unseen_in_training() {
        let c = small();
        let train: HashSet<&String> = c.train.src.iter().collect();
        assert!(c.valid.src.iter().chain(&c.test.src).all(|s| !train.contains(s)));
        assert_eq!(c.test.src.len(), 100);
    }

    #[test]
    fn a_known_sentence_reorders_and_agrees() {
        // "the woman says that the dog sees the cat": the inner clause is embedded and verb-final.
        let lex = Lexicon::new();
        let np = |noun| NounPhrase { det: Det::Definite, noun, plural: false, adjectives: vec![] };
        let noun = |n: &str| NOUNS.iter().position(|&(sg, _)| sg == n).unwrap();
        let verb = |v: &str| TRANSITIVE.iter().position(|&(b, _, _)| b == v).unwrap();
        let s = Sentence::Reported {
            subject: Subject::Noun(np(noun("woman"))),
            verb: 0,
            past: false,
            inner: Clause {
                subject: Subject::Noun(np(noun("dog"))),
                verb: Verb::Transitive(verb("see")),
                past: false,
                object: Some(np(noun("cat"))),
                place: None,
                time: None,
            },
        };
        assert_eq!(english(&s), "The woman says that the dog sees the cat.");
        let t = TargetRenderer { lex: &lex, rng: None }.sentence(&s);
        let words: Vec<&str> = t.trim_end_matches('.').split(' ').collect();
        // Det+noun, "ke", det+noun, accusative det+noun, inner verb, main verb: 9 words.
        assert_eq!(words.len(), 9, "{t}");
        assert_eq!(words[2], "ke");
        assert!(words[0] == "Lo" || words[0] == "La" || words[0] == "Le");
        assert!(["lon", "lan", "le"].contains(&words[5]), "accusative determiner in {t}");
        assert!(words[7].ends_with('t') && words[8].ends_with('t'), "3rd person singular verbs in {t}");
    }

    #[test]
    fn references_vary_but_the_mode_is_fixed() {
        let c = small();
        let differ = c.train.tgt.iter().zip(&c.train.mode).filter(|(t, m)| t != m).count();
        // Most sentences contain at least one ambiguous choice, and the mode is often picked.
        assert!(
            differ > 2000 / 4 && differ < 2000 * 19 / 20,
            "{differ} of 2000 references differ from the mode"
        );
    }

    #[test]
    fn objects_are_scrambled_before_the_subject_in_some_references_but_not_in_the_mode() {
        let lex = Lexicon::new();
        let np = |noun| NounPhrase { det: Det::Definite, noun, plural: false, adjectives: vec![] };
        let clause = Sentence::Simple(Clause {
            subject: Subject::Noun(np(0)),
            verb: Verb::Transitive(0),
            past: false,
            object: Some(np(1)),
            place: None,
            time: None,
        });
        // Which of the two nouns a rendering names first (word 1, after its determiner).
        let object_first = |t: &str| {
            let noun = t.split(' ').nth(1).unwrap().to_string();
            let is = |n: usize| lex.nouns[n].options.iter().any(|o| noun == o.form(false));
            assert!(is(0) != is(1), "{t}");
            is(1)
        };
        let mode = TargetRenderer { lex: &lex, rng: None }.sentence(&clause);
        assert!(!object_first(&mode), "the subject comes first in the mode: {mode}");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let scrambled = (0..1000)
            .filter(|_| object_first(&TargetRenderer { lex: &lex, rng: Some(&mut rng) }.sentence(&clause)))
            .count();
        assert!((240..=360).contains(&scrambled), "{scrambled} of 1000 references scrambled (30% expected)");
    }

    #[test]
    fn target_verbs_agree_with_plural_subjects() {
        let lex = Lexicon::new();
        let c = Clause {
            subject: Subject::Noun(NounPhrase {
                det: Det::Definite,
                noun: 0,
                plural: true,
                adjectives: vec![1],
            }),
            verb: Verb::Intransitive(0),
            past: true,
            object: None,
            place: None,
            time: None,
        };
        let t = TargetRenderer { lex: &lex, rng: None }.sentence(&Sentence::Simple(c));
        let words: Vec<&str> = t.trim_end_matches('.').split(' ').collect();
        assert_eq!(words[0], "Li");
        assert!(words[2].ends_with('i'), "plural adjective ending in {t}");
        assert!(words[3].ends_with("tant"), "past 3rd plural verb in {t}");
    }
}
