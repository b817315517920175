using System;
using System.IO;
using System.Linq;
using static TorchSharp.torch;

namespace Gpt;

/// <summary>The training text as character ids: the vocabulary is the text's distinct characters, in ordinal order.</summary>
public sealed class Corpus
{
    /// <summary>Where Debian's 'fortunes' package puts its English databases (plain text, one fortune after each '%').</summary>
    public const string FortunesFolder = "/usr/share/games/fortunes";

    private readonly long[] _ids;

    private Corpus(string text, string source)
    {
        Source = source;
        Alphabet = text.Distinct().OrderBy(c => c).ToArray();
        var index = Alphabet.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => (long)p.i);
        _ids = text.Select(c => index[c]).ToArray();
    }

    public string Source { get; }
    public char[] Alphabet { get; }
    public long Length => _ids.Length;

    /// <summary>The given file, or every English database of the fortunes package.</summary>
    public static Corpus Load(string? path)
    {
        if (path is not null)
        {
            if (!File.Exists(path)) throw new FileNotFoundException($"--text {path}: no such file.", path);
            return new Corpus(File.ReadAllText(path), path);
        }
        var files = Directory.Exists(FortunesFolder)
            ? Directory.GetFiles(FortunesFolder).Where(f => Path.GetExtension(f) == "").OrderBy(f => f, StringComparer.Ordinal).ToArray()
            : Array.Empty<string>();
        if (files.Length == 0)
            throw new FileNotFoundException($"No training text: {FortunesFolder} is empty or missing. Install it with tools/install-prerequisites.sh " +
                                            "(sudo apt-get install fortunes), or give any text file with --text FILE.");
        var text = string.Concat(files.Select(f => File.ReadAllText(f).Replace("\r", "").Replace("\n%\n", "\n\n")));
        return new Corpus(text, $"{files.Length} fortunes databases in {FortunesFolder}");
    }

    /// <summary>
    /// A batch of random windows, the same on every rank for the same step: inputs and next-character targets. Training
    /// windows come from the first 90 % of the text, validation windows (<paramref name="validation"/>) from the last 10 %,
    /// which training never sees.
    /// </summary>
    public (Tensor Input, Tensor Target) Batch(int batch, int context, int step, ulong seed, bool validation = false)
    {
        long split = Length * 9 / 10;
        var (from, to) = validation ? (split, Length - context - 1) : (0L, split - context - 1);
        var generator = new Generator(seed * 1_000_003UL + (ulong)step + (validation ? 1UL << 40 : 0));
        var starts = randint(from, to, new long[] { batch }, generator: generator).data<long>().ToArray();
        var windows = starts.Select(s => _ids.AsSpan((int)s, context + 1).ToArray()).ToArray();
        var all = tensor(windows.SelectMany(w => w).ToArray(), new long[] { batch, context + 1 });
        return (all[.., ..context], all[.., 1..]);
    }

    public long[] Encode(string text) => text.Select(c => (long)Math.Max(0, Array.IndexOf(Alphabet, c))).ToArray();

    public string Decode(System.Collections.Generic.IEnumerable<long> ids) => new(ids.Select(i => Alphabet[i]).ToArray());
}
