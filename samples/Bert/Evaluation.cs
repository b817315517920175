using System;
using System.Linq;
using static TorchSharp.torch;

namespace Bert;

/// <summary>What the trained plain model does on held-out sentences: masked-character accuracy and a few fill-ins.</summary>
public static class Evaluation
{
    private const int HeldOutSentences = 1024;
    private const int BatchSize = 128;

    public static void Show(CharBert model, Sentences sentences, ulong seed)
    {
        model.eval();
        using var noGrad = no_grad();
        var (accuracy, masked, baseline) = Accuracy(model, sentences, seed);
        Console.WriteLine($"masked-character accuracy on held-out text: {accuracy:P1} of {masked:N0} masked characters in {HeldOutSentences:N0} sentences " +
                          $"(always guessing the most common character, ' ': {baseline:P1})");
        foreach (var text in new[] { "Th_ cat sat on the m_t.", "A fool and h_s money are soon p_rted." })
            Console.WriteLine(FillIn(model, sentences, text));
        var generator = new Generator(seed);
        foreach (var sentence in sentences.HeldOut.Where(h => h.Length >= 24).Take(3))
        {
            // Every character chosen with probability 0.15 becomes '_'.
            var chosen = rand(new long[] { sentence.Length }, generator: generator).lt(MaskedCharacters.ChosenShare).data<bool>().ToArray();
            Console.WriteLine(FillIn(model, sentences, new string(sentences.Decode(sentence).Select((c, i) => chosen[i] ? '_' : c).ToArray())));
        }
    }

    /// <summary>The share of masked held-out characters predicted right, and of a guess of the most common character.</summary>
    private static (double Accuracy, long Masked, double Baseline) Accuracy(CharBert model, Sentences sentences, ulong seed)
    {
        long right = 0, masked = 0, spaces = 0;
        long space = sentences.Encode(" ")[0];
        for (int start = 0; start < HeldOutSentences; start += BatchSize)
        {
            using var scope = NewDisposeScope();
            var (ids, real) = sentences.Pad(Enumerable.Range(start, BatchSize).Select(i => sentences.HeldOut[i % sentences.HeldOut.Length]).ToArray());
            var (input, target) = MaskedCharacters.Corrupt(ids, real, sentences.Vocabulary, seed + (ulong)start);
            var counted = target.ne(MaskedCharacters.Ignored);
            var predicted = model.forward(input, real).argmax(-1);
            right += predicted.eq(target).logical_and(counted).sum().item<long>();
            spaces += target.eq(space).sum().item<long>();
            masked += counted.sum().item<long>();
        }
        return ((double)right / masked, masked, (double)spaces / masked);
    }

    /// <summary>"Th_ cat" -> "The cat": each '_' becomes the mask, and the model's most likely character replaces it.</summary>
    private static string FillIn(CharBert model, Sentences sentences, string text)
    {
        var ids = sentences.Encode(text).Select((id, i) => text[i] == '_' ? Sentences.Mask : id).ToArray();
        var (input, real) = sentences.Pad(new[] { ids });
        var predicted = model.forward(input, real).argmax(-1)[0].data<long>().ToArray();
        var filled = ids.Select((id, i) => id == Sentences.Mask ? predicted[i] : id);
        return $"  {text,-66} -> {sentences.Decode(filled)}";
    }
}
