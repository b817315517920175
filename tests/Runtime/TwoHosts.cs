using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// Two "hosts" on this machine for one test class (tools/two-hosts): network namespaces joined by a veth pair, in which
/// each rank also gets a host name and a /dev/shm of its own. Their names and addresses are this test process's alone
/// (from its process id), so that runs side by side, or namespaces left over by a killed run, do not collide; leftovers
/// of runs whose process is gone are removed first. <see cref="Dispose"/> ends whatever still runs in them and removes
/// them, whether the tests passed or not. Needs root and iproute2's <c>ip netns</c> (CI runs as root): without them it
/// fails, saying so, rather than letting the tests pass untried.
/// </summary>
public sealed class TwoHosts : IDisposable
{
    private const string NamePrefix = "pippy";

    public TwoHosts()
    {
        RequireNamespaces();
        RemoveLeftovers();
        int pid = Environment.ProcessId;
        Prefix = NamePrefix + pid;
        // A /30 of 10.0.0.0/8 per process id (pid_max is at most 2^22): 2 addresses, the two hosts'.
        string network = $"10.{pid >> 14}.{(pid >> 6) & 255}";
        int host = (pid & 63) << 2;
        AddressA = $"{network}.{host + 1}";
        AddressB = $"{network}.{host + 2}";
        var setup = Script("setup.sh", ("PIPPY_HOST_A_ADDRESS", AddressA + "/30"), ("PIPPY_HOST_B_ADDRESS", AddressB + "/30"));
        if (setup.ExitCode != 0)
        {
            Script("teardown.sh");
            throw new InvalidOperationException($"tools/two-hosts/setup.sh failed ({setup.ExitCode}): {setup.Output}{setup.Errors}");
        }
    }

    /// <summary>The namespaces are this prefix with A and B (tools/two-hosts: PIPPY_HOSTS).</summary>
    public string Prefix { get; }

    /// <summary>hostA's and hostB's addresses on the link between them (pp0 in each namespace).</summary>
    public string AddressA { get; }
    public string AddressB { get; }

    /// <summary>
    /// How to start mpiexec in hostA's namespace with hydra's ssh launcher replaced by tools/two-hosts/launch.sh, the
    /// ranks placed by <paramref name="hosts"/> (e.g. hostA:2,hostB:2: ranks 0-1 on hostA, 2-3 on hostB; hostA:1,hostB:1:
    /// alternating), running tests/ParityApp with <paramref name="arguments"/>; <paramref name="environment"/> is given
    /// to every rank (-genv).
    /// </summary>
    public ProcessStartInfo ParityApp(string hosts, int ranks, string arguments, params (string Name, string Value)[] environment)
    {
        string root = MpiLauncher.RepositoryRoot();
        // UCX's default transports: between the namespaces (one kernel, one boot) UCX finds its own shared memory, so
        // MPI's messages do not cross the veth. Forcing them over it (UCX_TLS=tcp,self) made MPI_Finalize hang in 5
        // of 8 jobs here (MPICH 4.0.2, UCX 1.13.1); PipelineEnvironment.Dispose then ends the ranks after 10 s, but
        // hydra, whose PMI barrier they leave, exits 255. What these tests check is Pippy's own choice of path, which
        // the host names decide; bench/two-hosts.sh measures the link itself.
        string genv = string.Concat(environment.Prepend(("UCX_NET_DEVICES", "pp0")).Select(e => $" -genv {e.Item1} {e.Item2}"));
        return MpiLauncher.Command("ip",
            $"netns exec {Prefix}A {MpiLauncher.Launcher()} -launcher ssh -launcher-exec {Path.Combine(root, "tools", "two-hosts", "launch.sh")} " +
            $"-hosts {hosts} -iface pp0 -n {ranks}{genv} dotnet {MpiLauncher.SampleDll("ParityApp", "tests")} {arguments}",
            ("PIPPY_HOSTS", Prefix));
    }

    public void Dispose() => Script("teardown.sh");

    private MpiLauncher.Run Script(string name, params (string Name, string? Value)[] environment) =>
        MpiLauncher.Wait(MpiLauncher.Command(Path.Combine(MpiLauncher.RepositoryRoot(), "tools", "two-hosts", name), "",
            environment.Prepend(("PIPPY_HOSTS", Prefix)).ToArray()), 60, $"tools/two-hosts/{name}");

    private static void RequireNamespaces()
    {
        const string Why = "The two-host tests make two network namespaces on this machine (tools/two-hosts), which needs ";
        if (!Environment.IsPrivilegedProcess)
            throw new InvalidOperationException(Why + "root: run them as root (CI does), or leave them out with --filter \"FullyQualifiedName!~TwoHost\".");
        try
        {
            var list = MpiLauncher.Wait(MpiLauncher.Command("ip", "netns list"), 10, "ip netns list");
            if (list.ExitCode != 0) throw new InvalidOperationException(Why + $"'ip netns', which failed here: {list.Errors.Trim()}");
            var unshare = MpiLauncher.Wait(MpiLauncher.Command("unshare", "--uts --mount true"), 10, "unshare");
            if (unshare.ExitCode != 0) throw new InvalidOperationException(Why + $"'unshare --uts --mount', which failed here: {unshare.Errors.Trim()}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(Why + $"iproute2's ip and util-linux's unshare ({e.Message}); tools/install-prerequisites.sh installs them.", e);
        }
    }

    /// <summary>Namespaces of earlier runs whose test process is gone (killed before it could remove them).</summary>
    private static void RemoveLeftovers()
    {
        var list = MpiLauncher.Wait(MpiLauncher.Command("ip", "netns list"), 10, "ip netns list");
        var owners = list.Output.Split('\n')
            .Select(line => Regex.Match(line, $@"^{NamePrefix}(\d+)[AB]\b"))
            .Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value))
            .Distinct();
        foreach (int owner in owners.Where(o => o != Environment.ProcessId && !Directory.Exists($"/proc/{o}")))
            MpiLauncher.Wait(MpiLauncher.Command(Path.Combine(MpiLauncher.RepositoryRoot(), "tools", "two-hosts", "teardown.sh"), "",
                ("PIPPY_HOSTS", NamePrefix + owner)), 60, "tools/two-hosts/teardown.sh");
    }
}
