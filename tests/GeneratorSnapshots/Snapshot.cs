using System;
using System.IO;
using System.Runtime.CompilerServices;
using Xunit.Sdk;

namespace Pippy.Tests.Generator;

/// <summary>
/// Snapshot assertions with Verify's conventions (Verify itself is not served here): Snapshots/NAME.verified.cs
/// beside the test is the reviewed expectation; a mismatch writes NAME.received.cs next to it and fails;
/// UPDATE_SNAPSHOTS=1 accepts what was received.
/// </summary>
public static class Snapshot
{
    public static void Match(string actual, string name, [CallerFilePath] string callerFile = "")
    {
        string directory = Path.Combine(Path.GetDirectoryName(callerFile)!, "Snapshots");
        Directory.CreateDirectory(directory);
        string verified = Path.Combine(directory, name + ".verified.cs");
        string received = Path.Combine(directory, name + ".received.cs");
        actual = Normalize(actual);

        if (Environment.GetEnvironmentVariable("UPDATE_SNAPSHOTS") == "1")
        {
            File.WriteAllText(verified, actual);
            File.Delete(received);
            return;
        }

        string? expected = File.Exists(verified) ? Normalize(File.ReadAllText(verified)) : null;
        if (expected == actual)
        {
            File.Delete(received);
            return;
        }
        File.WriteAllText(received, actual);
        throw new XunitException(expected is null
            ? $"No verified snapshot: review {received}, then rename it to {verified} (or run with UPDATE_SNAPSHOTS=1)."
            : $"Snapshot mismatch: compare {verified} with {received}.\n{FirstDifference(expected, actual)}");
    }

    private static string Normalize(string text) => text.Replace("\r\n", "\n").Replace("\uFEFF", "").TrimEnd('\n') + "\n";

    private static string FirstDifference(string expected, string actual)
    {
        string[] e = expected.Split('\n'), a = actual.Split('\n');
        for (int i = 0; i < Math.Max(e.Length, a.Length); i++)
        {
            string el = i < e.Length ? e[i] : "<end of file>", al = i < a.Length ? a[i] : "<end of file>";
            if (el != al) return $"First difference at line {i + 1}:\n  verified: {el}\n  received: {al}";
        }
        return "";
    }
}
