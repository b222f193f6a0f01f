/**
 * The play as the benchmark sends it: the text of the public "Romeo and Juliet" benchmark
 * (shakespeare.mit.edu layout), parsed into speeches, and each spoken line turned into one message.
 *
 * Layout of the file: headings start in column 0, text is indented by four spaces, and paragraphs are
 * separated by blank lines.
 * - `ACT I` .. `ACT V`: act headings. `SCENE I. Verona. A public place.`: scene headings. `PROLOGUE`.
 * - Any other column-0 line is a speaker heading (`ROMEO`, `Nurse`, `First Musician`); the indented lines
 *   of the paragraph after it are the speech, one verse or prose line each. Asides inside a speech
 *   (`[Aside] ...`) are part of the line.
 * - An indented paragraph with no heading before it is a stage direction (`Enter ...`, `Exeunt`), except
 *   the Act I prologue, which has no heading: it is the Chorus's (Act II's prologue is headed `Chorus`,
 *   after an `Enter Chorus` direction).
 */

export interface Speech {
  /** Character key: the heading lowercased (`Nurse` and `NURSE` are one character). */
  speaker: string;
  /** The heading as first written in the file. */
  name: string;
  act: number;
  lines: string[];
}

export interface Message {
  /** 0-based position in the play. */
  n: number;
  from: string;
  to: string;
  text: string;
}

export interface Play {
  speeches: Speech[];
  /** Character key -> display name (first spelling met). */
  characters: Map<string, string>;
  messages: Message[];
  /** Stage-direction lines (indented, outside any speech): not sent. */
  stageDirectionLines: number;
  /** Headings: acts, scenes, prologues. */
  headings: number;
  /** What the public benchmark sends for the same file: see publicCount(). */
  publicBenchmark: { requests: number; users: number };
}

const ACT = /^ACT ([IVX]+)\s*$/;
const SCENE = /^SCENE [IVX]+\./;
/** A stage direction right after `PROLOGUE` (Act II: `Enter Chorus`, then a `Chorus` heading). */
const STAGE = /^(Enter|Re-enter|Exit|Exeunt)\b/;
const ROMAN: Record<string, number> = { I: 1, II: 2, III: 3, IV: 4, V: 5 };

export function parsePlay(text: string): Play {
  const speeches: Speech[] = [];
  const characters = new Map<string, string>();
  let act = 0;
  let heading: 'speaker' | 'prologue' | 'other' | undefined;
  let speaker: { key: string; name: string } | undefined;
  let current: Speech | undefined;
  let stageDirectionLines = 0;
  let headings = 0;

  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (line.trim() === '') {
      // A blank line ends a paragraph; the blank line right after a heading does not.
      if (current) {
        current = undefined;
        heading = undefined;
      }
      continue;
    }
    if (!/^\s/.test(line)) {
      current = undefined;
      const act_ = ACT.exec(line);
      if (act_) {
        act = ROMAN[act_[1] as string] ?? act + 1;
        heading = 'other';
        headings++;
      } else if (SCENE.test(line)) {
        heading = 'other';
        headings++;
      } else if (line === 'PROLOGUE') {
        heading = 'prologue';
        headings++;
      } else {
        heading = 'speaker';
        const name = line.trim();
        const key = name.toLowerCase();
        if (!characters.has(key)) characters.set(key, name);
        speaker = { key, name: characters.get(key) as string };
      }
      continue;
    }
    const said = line.trim();
    if (!current) {
      if (heading === 'speaker' && speaker) {
        current = { speaker: speaker.key, name: speaker.name, act, lines: [] };
      } else if (heading === 'prologue' && !STAGE.test(said)) {
        // The Act I prologue has no speaker heading; in the play the Chorus speaks it.
        if (!characters.has('chorus')) characters.set('chorus', 'Chorus');
        current = { speaker: 'chorus', name: characters.get('chorus') as string, act, lines: [] };
      }
      if (current) speeches.push(current);
      heading = undefined;
    }
    if (current) current.lines.push(said);
    else stageDirectionLines++;
  }
  // Only characters that actually speak become users.
  const speaking = new Set(speeches.map((s) => s.speaker));
  for (const k of [...characters.keys()]) if (!speaking.has(k)) characters.delete(k);
  return {
    speeches,
    characters,
    messages: toMessages(speeches),
    stageDirectionLines,
    headings,
    publicBenchmark: publicCount(text),
  };
}

/**
 * Each line of a speech goes to the character who speaks next: the speaker of the next speech by
 * someone else (a heading repeated after a stage direction is the same speaker going on). The play's
 * last speech (the Prince's) has nobody after it: it goes to the speaker's previous interlocutor, the
 * last other character who spoke before it. So every spoken line is sent, none is skipped.
 */
function toMessages(speeches: Speech[]): Message[] {
  const messages: Message[] = [];
  let previous: string | undefined;
  speeches.forEach((s, i) => {
    const before = speeches[i - 1];
    if (before && before.speaker !== s.speaker) previous = before.speaker;
    let target: string | undefined;
    for (let j = i + 1; j < speeches.length && target === undefined; j++) {
      const later = (speeches[j] as Speech).speaker;
      if (later !== s.speaker) target = later;
    }
    target ??= previous;
    if (target === undefined) return; // a play of one speaker: nobody to send to
    for (const text of s.lines) messages.push({ n: messages.length, from: s.speaker, to: target, text });
  });
  return messages;
}

/**
 * How the public benchmark (timokoesters/romeo-and-juliet-benchmark, src/main.rs) counts the same file,
 * for comparison: one `/send` per indented non-empty line (speech lines, stage directions, and the
 * prologue, said by whatever name was last read in column 0, e.g. a scene heading), plus one per
 * `ACT` heading; users are the distinct lowercased names that send (+ one that creates the room).
 */
export function publicCount(text: string): { requests: number; users: number } {
  const users = new Set<string>(['(room creator)']);
  let name = 'STAGE DIRECTION';
  let requests = 0;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') {
      name = 'STAGE DIRECTION';
    } else if (line.startsWith(' ')) {
      requests++;
      users.add(name.toLowerCase().replace(/[^a-z0-9]/g, '_'));
    } else if (line.startsWith('ACT')) {
      requests++;
      users.add('acts');
    } else {
      name = line.trim();
      i++; // the public tool skips the line after a heading
    }
  }
  return { requests, users: users.size };
}
