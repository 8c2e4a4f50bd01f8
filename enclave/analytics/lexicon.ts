/**
 * A small sentiment lexicon in the style of AFINN (integer scores from -5 to +5), written for this
 * project and aimed at customer feedback. The score of a text is the sum of its words' scores, a word
 * directly after a negator counting with its sign flipped, clamped to [-5, 5].
 */

const LEXICON_TEXT = `
abysmal -5 awful -4 terrible -4 horrible -4 worst -4 disgusting -4 scam -4 fraud -4 useless -3
broken -3 angry -3 furious -4 rude -3 disappointed -3 disappointing -3 poor -2 bad -3 unacceptable -3
faulty -3 defective -3 damaged -3 missing -2 late -2 delayed -2 delay -2 slow -2 wrong -2 lost -2
refund -1 complaint -2 problem -2 problems -2 issue -1 issues -1 error -2 errors -2 fail -2 failed -2
failure -3 crash -2 crashed -2 annoying -2 annoyed -2 frustrating -3 frustrated -3 confusing -2
confused -2 expensive -1 overpriced -2 overcharged -3 cancelled -2 canceled -2 ignored -2 waiting -1
never -1 unhappy -3 sad -2 hate -4 hated -4 dirty -2 cold -1 noisy -1 leak -2 leaking -2 cracked -2
scratched -2 rubbish -3 garbage -3 nightmare -4 mess -2 hassle -2 unreliable -3 unhelpful -2
excellent 4 amazing 4 awesome 4 fantastic 4 outstanding 5 superb 5 perfect 4 wonderful 4 great 3
good 3 nice 2 happy 3 pleased 3 satisfied 2 love 3 loved 3 lovely 3 helpful 2 friendly 2 fast 2
quick 2 quickly 2 easy 2 smooth 2 reliable 2 recommend 2 recommended 2 thanks 2 thank 2 glad 2
impressed 3 delighted 3 best 3 fine 1 okay 1 ok 1 polite 2 kind 2 solved 2 resolved 2 fixed 2 works 1
working 1 comfortable 2 clean 2 fresh 1 beautiful 3 brilliant 4 enjoy 2 enjoyed 2 worth 2 value 1
`;

export const SENTIMENT_LEXICON: ReadonlyMap<string, number> = (() => {
  const m = new Map<string, number>();
  const parts = LEXICON_TEXT.trim().split(/\s+/);
  for (let i = 0; i + 1 < parts.length; i += 2) m.set(parts[i]!, Number(parts[i + 1]));
  return m;
})();

const NEGATORS = new Set(['not', 'no', "don't", 'dont', "didn't", 'didnt', "isn't", 'isnt', "wasn't", 'wasnt', "can't", 'cant', 'never', 'hardly']);

/** Words that say nothing about a topic; left out of top-term counts. */
export const STOPWORDS: ReadonlySet<string> = new Set(
  `the a an and or but if then than so to of in on at by for with from as is are was were be been being it its this that
  these those i me my we our you your he she they them their his her not no do does did have has had will would can could
  should just very really also too again all any some more most much many there here what which who whom when where why how
  about after before into over under out up down off only own same such both each few other nor once while because until
  am im ive dont didnt isnt wasnt cant wont get got one two`.split(/\s+/).filter(Boolean),
);

const WORD_RE = /[\p{L}\p{N}']+/gu;

/** Lower-cased word tokens of a text, apostrophes kept inside words. Bounded by `maxTokens`. */
export function tokenize(text: string, maxTokens = 10_000): string[] {
  const fast = tokenizeAscii(text, maxTokens);
  if (fast !== undefined) return fast;
  const out: string[] = [];
  WORD_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = WORD_RE.exec(text)) !== null && out.length < maxTokens) {
    const w = m[0].toLowerCase().replace(/^'+|'+$/g, '');
    if (w.length > 0) out.push(w);
  }
  return out;
}

export function sentimentScore(tokens: readonly string[]): number {
  let s = 0;
  for (let i = 0; i < tokens.length; i++) {
    const v = SENTIMENT_LEXICON.get(tokens[i]!);
    if (v === undefined) continue;
    s += i > 0 && NEGATORS.has(tokens[i - 1]!) ? -v : v;
  }
  return s < -5 ? -5 : s > 5 ? 5 : s;
}

/**
 * `tokenize` for ASCII text (most feedback), without a regex per token: in ASCII the word characters
 * are [A-Za-z0-9'], and lower-casing the whole text is the same as lower-casing each token. Returns
 * undefined at the first non-ASCII character, for the Unicode-aware path.
 */
function tokenizeAscii(text: string, maxTokens: number): string[] | undefined {
  const n = text.length;
  for (let i = 0; i < n; i++) if (text.charCodeAt(i) > 0x7f) return undefined;
  const lower = text.toLowerCase();
  const out: string[] = [];
  let i = 0;
  while (i < n && out.length < maxTokens) {
    if (!isWordChar(lower.charCodeAt(i))) {
      i++;
      continue;
    }
    let start = i;
    while (i < n && isWordChar(lower.charCodeAt(i))) i++;
    let end = i;
    // apostrophes at either end are not part of the word
    while (start < end && lower.charCodeAt(start) === 0x27) start++;
    while (end > start && lower.charCodeAt(end - 1) === 0x27) end--;
    if (end > start) out.push(lower.slice(start, end));
  }
  return out;
}

function isWordChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x27 || (c >= 0x41 && c <= 0x5a);
}
