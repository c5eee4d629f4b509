#!/usr/bin/perl
# sisimai-bench.pl PASSES FILE... -- time Sisimai (Debian libsisimai-perl,
# the v4 API Sisimai->make) over the same mails bouncepipe's benchmark
# parses, delivered and vacation records included as in the corpus labels.
# Prints one line: "sisimai <version> <messages> <wall seconds> <cpu seconds>".
use strict;
use warnings;
use Sisimai;
use Time::HiRes qw(time);

my $passes = shift @ARGV or die "usage: $0 PASSES FILE...\n";
my @files  = @ARGV or die "usage: $0 PASSES FILE...\n";

# Load Sisimai's modules before the clock starts, as Go's are linked in.
Sisimai->make($files[0], delivered => 1, vacation => 1);

my ($u0, $s0) = times;
my $t0 = time;
my $n = 0;
for (1 .. $passes) {
    for my $f (@files) {
        Sisimai->make($f, delivered => 1, vacation => 1);
        $n++;
    }
}
my $wall = time - $t0;
my ($u1, $s1) = times;
printf "sisimai %s %d %.6f %.6f\n", $Sisimai::VERSION, $n, $wall, ($u1 - $u0) + ($s1 - $s0);
