# Failed check: Windows Update history entries that failed (ResultCode 4) or were aborted (5)
# since this run started here, and whether a reboot is pending, to
# s3://Bucket/OutputPrefix<instanceId>.csv.
Read-PpParametersFromEnv
$OutputPrefix = [string]$env:SSM_OutputPrefix

function Test-RebootPending {
    $keys = @(
        'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired',
        'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending'
    )
    foreach ($key in $keys) {
        if (Test-Path -LiteralPath $key) {
            return $true
        }
    }
    $sessionManager = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -ErrorAction SilentlyContinue
    return [bool]($sessionManager -and $sessionManager.PendingFileRenameOperations)
}

Invoke-PpDocument -Work {
    Test-PpPrefix -Name OutputPrefix -Value $OutputPrefix
    $since = Get-PpRunStartedAt
    $reboot = (Test-RebootPending).ToString().ToLowerInvariant()
    $checkedAt = Get-PpNow
    $lines = New-Object System.Collections.Generic.List[string]
    $lines.Add('instance_id,name,version,reason,reboot_pending,checked_at')
    $count = 0
    foreach ($entry in (Get-PpUpdateHistory)) {
        if ($entry.ResultCode -ne 4 -and $entry.ResultCode -ne 5) {
            continue
        }
        if (([datetime]$entry.Date).ToUniversalTime() -lt $since) {
            continue
        }
        $reason = 'failed'
        if ($entry.ResultCode -eq 5) {
            $reason = 'aborted'
        }
        $reason = '{0} (HResult 0x{1:X8})' -f $reason, $entry.HResult
        $lines.Add((ConvertTo-PpCsvRow @($script:InstanceId, $entry.Title, (Get-PpKbId -Title $entry.Title), $reason, $reboot, $checkedAt)))
        $count++
    }
    $csv = Join-Path $script:PpWork 'failed.csv'
    Write-PpLines -Path $csv -Lines $lines.ToArray()
    Send-PpS3Object -Path $csv -Key "$OutputPrefix$script:InstanceId.csv"
    $script:PpDetail = "failed=$count rebootPending=$reboot manager=wua"
}
