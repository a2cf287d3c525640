// Package zeroshot is zero-shot multiple-choice evaluation with the scoring of EleutherAI's
// lm-evaluation-harness (lm-eval, v0.4 task definitions).
//
// # Scoring
//
// Every choice of an item is a request (context, continuation); its score is the log-likelihood of
// the continuation's tokens given the context. acc takes the argmax of the raw sums; acc_norm the
// argmax of the sums divided by the answer's length — as lm-eval's code, the length of the answer
// text without the leading-space delimiter in characters (Unicode code points; the same as bytes
// for ASCII text, which is nearly all of these data sets). acc_bytes divides by the UTF-8 length
// instead (lm-eval's acc_bytes). Standard errors are lm-eval's: sample standard deviation (n−1)
// over √n.
//
// # Tokenization
//
// As lm-eval's Hugging Face backend (see Encode): trailing whitespace of the context moves to the
// continuation; context and context+continuation are encoded separately, without special tokens,
// and the continuation's tokens are whole[len(context_enc):]. No BOS token is added by default
// (lm-eval's add_bos_token=False for Llama-family models); Options.Prefix (the CLI's --add-bos)
// puts the tokenizer's BOS before every request. An empty context is replaced by the BOS token
// (Options.Empty; lm-eval's prefix_token_id). An input longer than the model's
// max_position_embeddings (Options.MaxLen) is truncated from the left, keeping the continuation:
// the model sees (context+continuation)[-(MaxLen+1):][:-1]. A continuation longer than the window
// by itself (which lm-eval cannot score) is scored on its last MaxLen tokens only; Result.Partial
// counts such requests.
//
// # Batching
//
// A request whose input is a prefix of another's (one context with one-token answers, as BoolQ's
// " no"/" yes") takes its logits from the longer sequence. The other sequences are sorted by
// length, longest first, and run in batches right-padded to the batch's longest input; causal
// attention makes the padding invisible to the real positions, so the score of a request does not
// depend on its batch (the tests check this against one-at-a-time forwards).
//
// # Task files
//
// JSON Lines, one item per line, optionally bzip2- (.bz2) or gzip-compressed (.gz). The format is
// detected from the first record's fields, or named (Format). Prompts, as lm-eval's task YAML:
//
//	arc         {question, choices{text,label}, answerKey}: "Question: {question}\nAnswer:" → " {text_i}"
//	openbookqa  {question_stem, choices{text,label}, answerKey}: "{question_stem}" → " {text_i}"
//	piqa        {goal, sol1, sol2, label}: "Question: {goal}\nAnswer:" → " {sol1}" | " {sol2}"
//	hellaswag   {activity_label, ctx | ctx_a+ctx_b, endings, label}:
//	            preprocess("{activity_label}: {ctx}") → " " + preprocess(ending_i)
//	winogrande  {sentence with "_", option1, option2, answer "1"|"2"}: partial evaluation,
//	            "{sentence before _}{option_i}" → " {sentence after _, stripped}"
//	boolq       {passage, question, label 0|1 or false|true}:
//	            "{passage}\nQuestion: {question}?\nAnswer:" → " no" | " yes"
//
// Notes on fidelity:
//   - acc_norm divides by characters, as lm-eval's code (len of a Python str) does, although
//     the design note and lm-eval's prose say bytes; acc_bytes is the byte version. The two differ
//     only on items with non-ASCII answers (about 1% of ARC, none of OpenBookQA).
//   - lm-eval reports only acc for WinoGrande and BoolQ; acc_norm is still computed here by the same
//     rule (for BoolQ it divides by len("no") = 2 and len("yes") = 3).
//
// Deviations, all from the data rather than the method:
//   - HellaSwag: lm-eval builds the context from ctx_a + " " + ctx_b.capitalize(); with a record
//     that has only ctx (the joined text, as the shared copy), ctx is used as it is, so the first
//     word of ctx_b keeps its lower case ("… on a roof. he" where lm-eval has "… on a roof. He").
//     Records with ctx_a and ctx_b are treated exactly as lm-eval.
//   - WinoGrande: lm-eval reports only acc. All choices share the continuation, so length
//     normalisation cannot change the argmax and acc_norm (reported) equals acc.
//   - BoolQ: SuperGLUE's passages start with "Title -- "; copies without it score a different
//     (shorter) context.
package zeroshot
