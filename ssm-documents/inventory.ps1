# Inventory: installed hotfixes and Windows Update history (KB ids), to
# s3://Bucket/OutputPrefix<instanceId>.csv.
Read-PpParametersFromEnv
$Phase = [string]$env:SSM_Phase
$OutputPrefix = [string]$env:SSM_OutputPrefix

Invoke-PpDocument -Work {
    Test-PpValue -Name Phase -Value $Phase -Pattern '^(pre|post)$'
    Test-PpPrefix -Name OutputPrefix -Value $OutputPrefix
    $owner = Get-PpTag -Key $script:OwnerTagKey
    $application = Get-PpTag -Key $script:ApplicationTagKey
    $domain = Get-PpDomain

    # KB id -> name and install date; Get-HotFix first, history fills what it lacks.
    $byKb = @{}
    foreach ($hotfix in @(Get-CimInstance -ClassName Win32_QuickFixEngineering)) {
        $kb = [string]$hotfix.HotFixID
        if (-not $kb) {
            continue
        }
        $installedOn = ''
        if ($hotfix.InstalledOn) {
            $installedOn = ([datetime]$hotfix.InstalledOn).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
        }
        $byKb[$kb] = @{ Name = [string]$hotfix.Description; InstalledOn = $installedOn }
    }
    foreach ($entry in (Get-PpUpdateHistory)) {
        # ResultCode 2 = succeeded, 3 = succeeded with errors.
        if ($entry.ResultCode -ne 2 -and $entry.ResultCode -ne 3) {
            continue
        }
        $kb = Get-PpKbId -Title $entry.Title
        if (-not $kb) {
            continue
        }
        $installedOn = ([datetime]$entry.Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
        if (-not $byKb.ContainsKey($kb)) {
            $byKb[$kb] = @{ Name = [string]$entry.Title; InstalledOn = $installedOn }
        }
        elseif (-not $byKb[$kb].InstalledOn -or $byKb[$kb].Name -in @('Update', 'Security Update', 'Hotfix')) {
            $byKb[$kb] = @{ Name = [string]$entry.Title; InstalledOn = $installedOn }
        }
    }

    $lines = New-Object System.Collections.Generic.List[string]
    $lines.Add('instance_id,owner,domain,application,name,version,installed_on')
    foreach ($kb in ($byKb.Keys | Sort-Object)) {
        $lines.Add((ConvertTo-PpCsvRow @($script:InstanceId, $owner, $domain, $application, $byKb[$kb].Name, $kb, $byKb[$kb].InstalledOn)))
    }
    $csv = Join-Path $script:PpWork 'inventory.csv'
    Write-PpLines -Path $csv -Lines $lines.ToArray()
    Send-PpS3Object -Path $csv -Key "$OutputPrefix$script:InstanceId.csv"
    $script:PpDetail = "$Phase inventory: $($byKb.Count) updates"
}
