# Verify: after the approved reboot, the instance booted again (LastBootUpTime not before
# RebootedAfter) and its application is healthy: Windows services Running, local health URL
# answering 2xx/3xx. The checks come from the parameters and from the instance's own tags
# HealthServices / HealthUrl (lambda/shared/approvals.ts HEALTH_TAG_KEYS); HealthUnits /
# SystemdUnits are for Linux.
Read-PpParametersFromEnv
$RebootedAfter = [string]$env:SSM_RebootedAfter
$ServiceNames = [string]$env:SSM_ServiceNames
$HealthUrl = [string]$env:SSM_HealthUrl

# The documents' allowedPatterns (verify.yaml); tag values are held to the same.
$TimePattern = '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z$'
$ServicesPattern = '^([A-Za-z0-9][A-Za-z0-9_.@-]{0,79}(,[A-Za-z0-9][A-Za-z0-9_.@-]{0,79}){0,49})?$'
$UrlPattern = '^(http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?(/[A-Za-z0-9._~/%-]{0,200})?)?$'

function Format-PpTime {
    param([datetime]$Time)
    $Time.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ', [Globalization.CultureInfo]::InvariantCulture)
}

# Whole seconds since the epoch, so a boot within the second of the request still counts.
function ConvertTo-PpEpoch {
    param([datetime]$Time)
    [long][Math]::Floor(($Time.ToUniversalTime() - [datetime]'1970-01-01T00:00:00').TotalSeconds)
}

# A tag is the instance owner's input: spaces dropped, then held to the parameter's pattern; an
# invalid value is ignored and named in the detail.
function Get-PpTagList {
    param([string]$Key, [string]$Pattern, [System.Collections.Generic.List[string]]$Notes)
    $value = (Get-PpTag -Key $Key) -replace '\s', ''
    if (-not $value) {
        return ''
    }
    if ($value -cnotmatch $Pattern) {
        $Notes.Add("tag $Key ignored: not allowed")
        return ''
    }
    return $value
}

# Comma-separated lists -> distinct items, first occurrence kept.
function Merge-PpList {
    param([string[]]$Lists)
    $items = New-Object System.Collections.Generic.List[string]
    foreach ($list in $Lists) {
        foreach ($item in ([string]$list).Split(',')) {
            if ($item -and -not $items.Contains($item)) {
                $items.Add($item)
            }
        }
    }
    return , $items.ToArray()
}

function Get-PpHttpStatus {
    param([string]$Url)
    try {
        # No redirects: a 3xx already counts as an answer. Windows PowerShell returns a 3xx with a
        # non-terminating "too many redirects" error (silenced here) and throws on 4xx/5xx.
        $response = Invoke-WebRequest -Uri $Url -UseBasicParsing -TimeoutSec 10 -MaximumRedirection 0 -ErrorAction SilentlyContinue
        if ($response) {
            return [int]$response.StatusCode
        }
        return 0
    }
    catch {
        $response = $_.Exception.Response
        if ($response -and $response.StatusCode) {
            return [int]$response.StatusCode
        }
        return 0
    }
}

Invoke-PpDocument -Work {
    Test-PpValue -Name RebootedAfter -Value $RebootedAfter -Pattern $TimePattern
    Test-PpValue -Name ServiceNames -Value $ServiceNames -Pattern $ServicesPattern
    Test-PpValue -Name HealthUrl -Value $HealthUrl -Pattern $UrlPattern

    $styles = [Globalization.DateTimeStyles]::AssumeUniversal -bor [Globalization.DateTimeStyles]::AdjustToUniversal
    $after = [datetime]::Parse($RebootedAfter, [Globalization.CultureInfo]::InvariantCulture, $styles)
    $boot = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime
    if (-not $boot) {
        throw 'boot time unknown (no Win32_OperatingSystem.LastBootUpTime)'
    }
    if ((ConvertTo-PpEpoch $boot) -lt (ConvertTo-PpEpoch $after)) {
        throw "did not reboot: boot time $(Format-PpTime $boot) is before $(Format-PpTime $after)"
    }

    $checks = New-Object System.Collections.Generic.List[string]
    $notes = New-Object System.Collections.Generic.List[string]
    $checks.Add("boot $(Format-PpTime $boot) after $(Format-PpTime $after)")
    $failed = 0

    $tagServices = Get-PpTagList -Key 'HealthServices' -Pattern $ServicesPattern -Notes $notes
    $tagUrl = Get-PpTagList -Key 'HealthUrl' -Pattern $UrlPattern -Notes $notes
    $services = Merge-PpList -Lists @($ServiceNames, $tagServices)
    $urls = Merge-PpList -Lists @($HealthUrl, $tagUrl)

    foreach ($name in $services) {
        $service = Get-Service -Name $name -ErrorAction SilentlyContinue
        if (-not $service) {
            $checks.Add("service $name not found")
            $failed++
        }
        elseif ($service.Status -ne 'Running') {
            $checks.Add("service $name $($service.Status)")
            $failed++
        }
        else {
            $checks.Add("service $name Running")
        }
    }

    foreach ($url in $urls) {
        $code = Get-PpHttpStatus -Url $url
        if ($code -ge 200 -and $code -lt 400) {
            $checks.Add("url $url $code")
        }
        elseif ($code -gt 0) {
            $checks.Add("url $url $code")
            $failed++
        }
        else {
            $checks.Add("url $url no answer")
            $failed++
        }
    }

    if ($services.Count -eq 0 -and $urls.Count -eq 0) {
        $checks.Add('no application checks configured')
    }
    foreach ($note in $notes) {
        $checks.Add($note)
    }
    $script:PpDetail = $checks -join '; '
    if ($failed -gt 0) {
        $total = $services.Count + $urls.Count + 1
        throw "$failed of $total checks failed"
    }
}
