<#
.SYNOPSIS
    Collects a kbgap device report (schema kbgap.device/1) on a Windows host.

.DESCRIPTION
    Reads HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion (build, UBR, edition,
    installation type), Get-HotFix (installed updates) and the Uninstall registry keys
    (installed programs), and writes one JSON document as described in docs/device-report.md.
    Works on Windows PowerShell 2.0+ (Windows 7 / Server 2008 R2) and PowerShell 7.

.PARAMETER OutFile
    Where to write the JSON (UTF-8 without BOM). Without it, the JSON goes to stdout.

.PARAMETER MachineId
    Optional 40-hex machine id to embed (for example the Defender machine id).

.PARAMETER NoSoftware
    Skip the installed-programs inventory.

.EXAMPLE
    powershell -NoProfile -ExecutionPolicy Bypass -File Collect-KbgapReport.ps1 -OutFile "$env:COMPUTERNAME.json"
#>
[CmdletBinding()]
param(
    [string]$OutFile,
    [ValidatePattern('^[0-9a-fA-F]{40}$')]
    [string]$MachineId,
    [switch]$NoSoftware
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

function Get-RegValue {
    param([string]$Path, [string]$Name)
    try {
        $item = Get-ItemProperty -Path $Path -Name $Name -ErrorAction Stop
        return $item.$Name
    } catch {
        return $null
    }
}

function ConvertTo-JsonString {
    # Minimal JSON string escaper: PowerShell 2.0 has no ConvertTo-Json.
    param([AllowNull()][object]$Value)
    if ($null -eq $Value) { return 'null' }
    $s = [string]$Value
    $sb = New-Object System.Text.StringBuilder
    [void]$sb.Append('"')
    foreach ($ch in $s.ToCharArray()) {
        $code = [int]$ch
        switch ($ch) {
            '"'  { [void]$sb.Append('\"'); continue }
            '\'  { [void]$sb.Append('\\'); continue }
            "`n" { [void]$sb.Append('\n'); continue }
            "`r" { [void]$sb.Append('\r'); continue }
            "`t" { [void]$sb.Append('\t'); continue }
            default {
                if ($code -lt 0x20) { [void]$sb.AppendFormat('\u{0:x4}', $code) }
                else { [void]$sb.Append($ch) }
            }
        }
    }
    [void]$sb.Append('"')
    return $sb.ToString()
}

function ConvertTo-JsonNumber {
    param([AllowNull()][object]$Value)
    if ($null -eq $Value) { return 'null' }
    return ([uint32]$Value).ToString([System.Globalization.CultureInfo]::InvariantCulture)
}

$cv = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'

$productName = Get-RegValue $cv 'ProductName'
$currentBuild = Get-RegValue $cv 'CurrentBuild'
if (-not $currentBuild) { $currentBuild = Get-RegValue $cv 'CurrentBuildNumber' }
$major = Get-RegValue $cv 'CurrentMajorVersionNumber'
$minor = Get-RegValue $cv 'CurrentMinorVersionNumber'
$currentVersion = Get-RegValue $cv 'CurrentVersion'
$ubr = Get-RegValue $cv 'UBR'
$displayVersion = Get-RegValue $cv 'DisplayVersion'
if (-not $displayVersion) { $displayVersion = Get-RegValue $cv 'ReleaseId' }
$csdVersion = Get-RegValue $cv 'CSDVersion'
$installationType = Get-RegValue $cv 'InstallationType'
$editionId = Get-RegValue $cv 'EditionID'

# OS architecture (not the PowerShell process's): PROCESSOR_ARCHITEW6432 is set in a 32-bit
# process on a 64-bit OS.
$procArch = $env:PROCESSOR_ARCHITEW6432
if (-not $procArch) { $procArch = $env:PROCESSOR_ARCHITECTURE }
switch -Regex ($procArch) {
    '^AMD64$' { $arch = 'x64'; break }
    '^ARM64$' { $arch = 'arm64'; break }
    '^x86$'   { $arch = 'x86'; break }
    '^IA64$'  { $arch = 'itanium'; break }
    default   { $arch = $null }
}

$hostName = $env:COMPUTERNAME
$collectedAt = (Get-Date).ToString('yyyy-MM-ddTHH:mm:ssK', [System.Globalization.CultureInfo]::InvariantCulture)
# Get-Date 'K' gives '+01:00' for local time; make sure we always have an offset.
if ($collectedAt -notmatch '([+-]\d\d:\d\d|Z)$') {
    $collectedAt = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ', [System.Globalization.CultureInfo]::InvariantCulture)
}

# Installed updates: Win32_QuickFixEngineering (what Get-HotFix wraps), with InstalledOn kept as the
# raw text WMI gives (Get-HotFix's DateTime conversion fails on some hosts).
$hotfixes = @()
# Get-CimInstance exists from PowerShell 3.0; Get-WmiObject is gone from PowerShell 7.
if (Get-Command Get-CimInstance -ErrorAction SilentlyContinue) {
    $qfe = @(Get-CimInstance -ClassName Win32_QuickFixEngineering -ErrorAction SilentlyContinue)
} else {
    $qfe = @(Get-WmiObject -Class Win32_QuickFixEngineering -ErrorAction SilentlyContinue)
}
foreach ($h in $qfe) {
    if (-not $h.HotFixID) { continue }
    $on = $null
    if ($h.InstalledOn) { $on = [string]$h.InstalledOn }
    $hotfixes += ,@{ id = [string]$h.HotFixID; installedOn = $on; description = [string]$h.Description }
}

# Installed programs from the Uninstall keys (64-bit and 32-bit views); system components
# and updates (ParentKeyName / SystemComponent) are skipped, duplicates removed.
$software = @()
if (-not $NoSoftware) {
    $seen = @{}
    $roots = @(
        'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',
        'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'
    )
    foreach ($root in $roots) {
        foreach ($p in @(Get-ItemProperty -Path $root -ErrorAction SilentlyContinue)) {
            $names = $p.PSObject.Properties | ForEach-Object { $_.Name }
            if ($names -notcontains 'DisplayName' -or -not $p.DisplayName) { continue }
            if (($names -contains 'SystemComponent') -and $p.SystemComponent -eq 1) { continue }
            if (($names -contains 'ParentKeyName') -and $p.ParentKeyName) { continue }
            $ver = $null; if ($names -contains 'DisplayVersion') { $ver = $p.DisplayVersion }
            $pub = $null; if ($names -contains 'Publisher') { $pub = $p.Publisher }
            $key = "$($p.DisplayName)|$ver"
            if ($seen.ContainsKey($key)) { continue }
            $seen[$key] = $true
            $software += ,@{ name = [string]$p.DisplayName; vendor = $pub; version = $ver }
        }
    }
}

# Assemble JSON by hand (ConvertTo-Json is missing on PowerShell 2.0 and unwraps
# single-element arrays on 5.1).
$nl = "`n"
$os = @(
    '    "productName": ' + (ConvertTo-JsonString $productName),
    '    "currentMajorVersionNumber": ' + (ConvertTo-JsonNumber $major),
    '    "currentMinorVersionNumber": ' + (ConvertTo-JsonNumber $minor),
    '    "currentVersion": ' + (ConvertTo-JsonString $currentVersion),
    '    "currentBuild": ' + (ConvertTo-JsonString $currentBuild),
    '    "ubr": ' + (ConvertTo-JsonNumber $ubr),
    '    "displayVersion": ' + (ConvertTo-JsonString $displayVersion),
    '    "csdVersion": ' + (ConvertTo-JsonString $csdVersion),
    '    "installationType": ' + (ConvertTo-JsonString $installationType),
    '    "editionId": ' + (ConvertTo-JsonString $editionId),
    '    "architecture": ' + (ConvertTo-JsonString $arch)
) -join (',' + $nl)

$hf = @($hotfixes | ForEach-Object {
    '    {"id": ' + (ConvertTo-JsonString $_.id) + ', "installedOn": ' + (ConvertTo-JsonString $_.installedOn) +
        ', "description": ' + (ConvertTo-JsonString $_.description) + '}'
}) -join (',' + $nl)

$sw = @($software | ForEach-Object {
    '    {"name": ' + (ConvertTo-JsonString $_.name) + ', "vendor": ' + (ConvertTo-JsonString $_.vendor) +
        ', "version": ' + (ConvertTo-JsonString $_.version) + '}'
}) -join (',' + $nl)

$lines = @(
    '{',
    '  "schema": "kbgap.device/1",',
    '  "hostName": ' + (ConvertTo-JsonString $hostName) + ','
)
if ($MachineId) { $lines += '  "machineId": ' + (ConvertTo-JsonString $MachineId.ToLowerInvariant()) + ',' }
$lines += '  "collectedAt": ' + (ConvertTo-JsonString $collectedAt) + ','
$lines += '  "os": {' + $nl + $os + $nl + '  },'
if ($hf) { $lines += '  "hotfixes": [' + $nl + $hf + $nl + '  ],' } else { $lines += '  "hotfixes": [],' }
if ($sw) { $lines += '  "software": [' + $nl + $sw + $nl + '  ]' } else { $lines += '  "software": []' }
$lines += '}'
$json = ($lines -join $nl) + $nl

if ($OutFile) {
    if ([System.IO.Path]::IsPathRooted($OutFile)) { $full = $OutFile }
    else { $full = [System.IO.Path]::GetFullPath((Join-Path (Get-Location).Path $OutFile)) }
    [System.IO.File]::WriteAllText($full, $json, (New-Object System.Text.UTF8Encoding($false)))
    Write-Verbose "kbgap report written to $full"
} else {
    Write-Output $json
}
