using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Bert;

/// <summary>
/// The fortunes text as sentences of different lengths, each a sequence of character ids. Id 0 is padding and id 1
/// the mask; the text's distinct characters follow in ordinal order. Every tenth sentence is held out for evaluation.
/// </summary>
public sealed class Sentences
{
    /// <summary>Where Debian's 'fortunes' package puts its English databases (plain text, one fortune after each '%').</summary>
    public const string FortunesFolder = "/usr/share/games/fortunes";

    public const long Padding = 0;
    public const long Mask = 1;
    /// <summary>How padding and the mask are written when a sequence is shown.</summary>
    private const char PaddingSymbol = '·', MaskSymbol = '_';
    /// <summary>Sentences shorter than this say too little to predict a masked character from.</summary>
    private const int ShortestSentence = 8;

    private readonly Dictionary<char, long> _index;

    private Sentences(IReadOnlyList<string> sentences, string source, int context)
    {
        Source = source;
        Context = context;
        Alphabet = sentences.SelectMany(s => s).Distinct().OrderBy(c => c).ToArray();
        _index = Alphabet.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => (long)p.i + 2);
        var encoded = sentences.Select(Encode).ToArray();
        Training = encoded.Where((_, i) => i % 10 != 9).ToArray();
        HeldOut = encoded.Where((_, i) => i % 10 == 9).ToArray();
        Characters = sentences.Sum(s => (long)s.Length);
    }

    public string Source { get; }
    public int Context { get; }
    public char[] Alphabet { get; }
    /// <summary>The characters, padding and the mask.</summary>
    public int Vocabulary => Alphabet.Length + 2;
    public long Characters { get; }
    public long[][] Training { get; }
    public long[][] HeldOut { get; }

    /// <summary>
    /// Every English database of the fortunes package, each fortune's whitespace collapsed, split into sentences;
    /// a sentence longer than <paramref name="context"/> is cut at spaces into pieces that fit.
    /// </summary>
    public static Sentences Load(int context)
    {
        var files = Directory.Exists(FortunesFolder)
            ? Directory.GetFiles(FortunesFolder).Where(f => Path.GetExtension(f) == "").OrderBy(f => f, StringComparer.Ordinal).ToArray()
            : Array.Empty<string>();
        if (files.Length == 0)
            throw new FileNotFoundException($"No training text: {FortunesFolder} is empty or missing. Install it with tools/install-prerequisites.sh " +
                                            "(sudo apt-get install fortunes).");
        var fortunes = files.SelectMany(f => File.ReadAllText(f).Replace("\r", "").Split("\n%\n"));
        var sentences = fortunes
            .Select(f => Regex.Replace(f, @"\s+", " ").Trim())
            .SelectMany(f => Regex.Split(f, @"(?<=[.!?])\s+"))
            .SelectMany(s => Fit(s, context))
            .Where(s => s.Length >= ShortestSentence)
            .ToArray();
        return new Sentences(sentences, $"{files.Length} fortunes databases in {FortunesFolder}", context);
    }

    /// <summary>The sentence in pieces of at most <paramref name="context"/> characters, cut at spaces where it can be.</summary>
    private static IEnumerable<string> Fit(string sentence, int context)
    {
        while (sentence.Length > context)
        {
            int cut = sentence.LastIndexOf(' ', context);
            if (cut <= 0) cut = context;
            yield return sentence[..cut];
            sentence = sentence[cut..].TrimStart();
        }
        yield return sentence;
    }

    /// <summary>
    /// <paramref name="count"/> sentences drawn by a generator seeded from the seed and the step (the same batch on
    /// every rank), as ids [count, context] padded with <see cref="Padding"/>, and the padding mask (1 real, 0 padding).
    /// </summary>
    public (Tensor Ids, Tensor Real) Batch(int count, int step, ulong seed, bool heldOut = false)
    {
        var from = heldOut ? HeldOut : Training;
        var generator = new Generator(seed * 1_000_003UL + (ulong)step + (heldOut ? 1UL << 40 : 0));
        var picks = randint(0, from.Length, new long[] { count }, generator: generator).data<long>().ToArray();
        return Pad(picks.Select(i => from[i]).ToArray());
    }

    /// <summary>The sequences padded at the end to <see cref="Context"/>: ids and the padding mask (float, 1 real, 0 padding).</summary>
    public (Tensor Ids, Tensor Real) Pad(IReadOnlyList<long[]> sequences)
    {
        var ids = new long[sequences.Count * Context];
        var real = new float[sequences.Count * Context];
        for (int row = 0; row < sequences.Count; row++)
            for (int t = 0; t < sequences[row].Length; t++)
            {
                ids[row * Context + t] = sequences[row][t];
                real[row * Context + t] = 1;
            }
        return (tensor(ids, new long[] { sequences.Count, Context }), tensor(real, new long[] { sequences.Count, Context }));
    }

    /// <summary>Characters not in the alphabet become spaces.</summary>
    public long[] Encode(string text) => text.Select(c => _index.TryGetValue(c, out long id) ? id : _index.GetValueOrDefault(' ', Mask)).ToArray();

    public string Decode(IEnumerable<long> ids) =>
        new(ids.Select(i => i == Padding ? PaddingSymbol : i == Mask ? MaskSymbol : Alphabet[i - 2]).ToArray());
}
