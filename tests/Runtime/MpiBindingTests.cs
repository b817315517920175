using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// How PipelineEnvironment.Start binds MPI: MPICH is used, Open MPI is refused with a message (MPI.NET would crash on
/// it), a missing MPI says how to install it. Open MPI is not installed here, so its launcher is recognised by the
/// environment it gives its ranks (OMPI_COMM_WORLD_SIZE), which is what the check reads.
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
}
