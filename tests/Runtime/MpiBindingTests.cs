using System;
using System.Collections.Generic;
using System.Text.RegularExpressions;
using Pippy.Runtime.Native;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// How PipelineEnvironment.Start binds MPI: MPICH is used, Open MPI is refused with a message (MPI.NET would crash on
/// it), a missing MPI says how to install it. Open MPI is not installed here, so its launcher is recognised by the
/// environment it gives its ranks (OMPI_COMM_WORLD_SIZE), which is what the check reads, and its library by the
/// decision of MpiLibrary.Choose given what loading found (the version text Open MPI's MPI_Get_library_version gives).
/// </summary>
public class MpiBindingTests(ITestOutputHelper log)
{
    private MpiLauncher.Run Alone(params (string, string)[] environment)
    {
        var run = MpiLauncher.StartAlone(MpiLauncher.SampleDll("Quickstart"), "", environment);
        log.WriteLine(run.Output + run.Errors);
        return run;
    }

    [Fact]
    public void OpenMpiLauncherIsRefusedWithTheFix()
    {
        var run = Alone(("OMPI_COMM_WORLD_SIZE", "3"));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("MpiUnavailableException", run.Errors);
        Assert.Contains("started by Open MPI's mpiexec", run.Errors);
        Assert.Contains("apt-get install mpich", run.Errors);
    }

    [Fact]
    public void MissingMpiLibrarySaysHowToInstallIt()
    {
        var run = Alone(("PIPPY_MPI_LIBRARY", "libmpich-that-is-not-here.so.12"));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("MPICH was not found (libmpich-that-is-not-here.so.12)", run.Errors);
        Assert.Contains("apt-get install mpich", run.Errors);
    }

    [Fact]
    public void SingleProcessWithoutMpiexecIsTold()
    {
        // MPICH starts a lone process as a one-rank job; the three-stage model then asks for mpiexec -n 3.
        var run = Alone();
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("start it with mpiexec -n 3", run.Errors);
    }

    [Fact]
    public void EachRankGetsItsShareOfTheCoresUnlessOmpNumThreadsSaysOtherwise()
    {
        // Start divides the machine's cores among its ranks (MPICH's MPI_LOCALNRANKS) for torch's threads.
        int cores = Environment.ProcessorCount, share = Math.Max(1, cores / 2);
        var unset = MpiLauncher.Parity(2, "threads", log, ("OMP_NUM_THREADS", null));
        Assert.Equal(2, Regex.Matches(unset.Output, $@"\] torch threads {share} of {cores} cores").Count);
        // Set, it is left to torch: every core for each rank here, not the share.
        var set = MpiLauncher.Parity(2, "threads", log, ("OMP_NUM_THREADS", cores.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(2, Regex.Matches(set.Output, $@"\] torch threads {cores} of {cores} cores").Count);
    }

    // What Open MPI 4.1's MPI_Get_library_version says (Debian 12's libmpi.so.40), and MPICH 4.0's.
    private const string OpenMpiVersion = "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022\0";
    private const string MpichVersion = "MPICH Version:      4.0.2\nMPICH Release date: Thu Apr  7 12:34:45 CDT 2022\n";

    private static Func<string, string?> Found(params (string Name, string Version)[] libraries)
    {
        var found = new Dictionary<string, string>();
        foreach (var (name, version) in libraries) found[name] = version;
        return name => found.TryGetValue(name, out var version) ? version : null;
    }

    [Fact]
    public void MpichIsChosenFirst()
    {
        Assert.Equal("libmpich.so.12", MpiLibrary.Choose(MpiLibrary.Candidates, overridden: false,
            Found(("libmpich.so.12", MpichVersion), ("libmpi.so.12", MpichVersion), (MpiLibrary.OpenMpiLibrary, OpenMpiVersion))));
    }

    [Fact]
    public void AnOpenMpiLibraryUnderAnMpichNameIsRefusedNamingIt()
    {
        // libmpi.so.12 is MPICH's name on Debian, but an install may give Open MPI's library that name.
        var refused = Assert.Throws<MpiUnavailableException>(() => MpiLibrary.Choose(MpiLibrary.Candidates, overridden: false, Found(("libmpi.so.12", OpenMpiVersion))));
        Assert.Contains("libmpi.so.12 is Open MPI (Open MPI v4.1.4, package: Debian OpenMPI", refused.Message);
        Assert.Contains("apt-get install mpich", refused.Message);
        Assert.Contains("mpiexec.mpich", refused.Message);
    }

    [Fact]
    public void AnOverrideThatPointsAtOpenMpiIsRefusedWithTheFix()
    {
        var refused = Assert.Throws<MpiUnavailableException>(() => MpiLibrary.Choose(new[] { "/opt/openmpi/lib/libmpi.so" }, overridden: true,
            Found(("/opt/openmpi/lib/libmpi.so", OpenMpiVersion), ("libmpich.so.12", MpichVersion))));
        Assert.Contains("/opt/openmpi/lib/libmpi.so is Open MPI", refused.Message);
        Assert.Contains("unset PIPPY_MPI_LIBRARY or point it at libmpich.so.12", refused.Message);
    }

    [Fact]
    public void OnlyOpenMpiInstalledSaysSoAndHowToInstallMpich()
    {
        var refused = Assert.Throws<MpiUnavailableException>(() => MpiLibrary.Choose(MpiLibrary.Candidates, overridden: false, Found((MpiLibrary.OpenMpiLibrary, OpenMpiVersion))));
        Assert.Contains("Only Open MPI (libmpi.so.40) is installed", refused.Message);
        Assert.Contains("apt-get install mpich", refused.Message);
    }

    [Fact]
    public void NoMpiAtAllSaysHowToInstallMpich()
    {
        var refused = Assert.Throws<MpiUnavailableException>(() => MpiLibrary.Choose(MpiLibrary.Candidates, overridden: false, Found()));
        Assert.Contains("MPICH was not found (libmpich.so.12, libmpi.so.12)", refused.Message);
    }

    [Fact]
    public void TheRealProbeReadsThisMachinesMpichVersion()
    {
        // The loader Bind uses, on the MPICH installed here: it loads, and its version text is MPICH's, so it is chosen.
        Assert.Contains("MPICH", MpiLibrary.Probe("libmpich.so.12"));
        Assert.Equal("libmpich.so.12", MpiLibrary.Choose(MpiLibrary.Candidates, overridden: false, MpiLibrary.Probe));
        Assert.Null(MpiLibrary.Probe("libmpich-that-is-not-here.so.12"));
    }
}
